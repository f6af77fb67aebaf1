/* tests/test-wire.c: gortd's wire format (proto/wire.c): frames, fds over SCM_RIGHTS, the validator's every rejection. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include "proto/wire.h"
#define GORT_TEST_NO_RUNTIME /* links no runtime: the wire format only */
#include "testlib.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static size_t pack_request(Gort__V1__Request *req, uint8_t *buf, size_t cap)
{
	size_t n = gort__v1__request__get_packed_size(req);
	ck_assert_uint_le(n, cap);
	return gort__v1__request__pack(req, buf);
}

static Gort__V1__Request stats_request(uint64_t id)
{
	static Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.id = id;
	req.body_case = GORT__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	return req;
}

/* Validates buf as a Request and returns the reason (NULL if accepted). */
static const char *why_request(const uint8_t *buf, size_t n)
{
	const char *why = NULL;
	int r = wire_validate(&gort__v1__request__descriptor, buf, n, WIRE_REQUEST_REPEATED_MAX, &why);
	if (r == 0)
		return NULL;
	ck_assert_int_eq(r, -EBADMSG);
	ck_assert_ptr_nonnull(why);
	return why;
}

/* ---- packing and the decoder ---- */

START_TEST(test_roundtrip_every_request)
{
	Gort__V1__SubmitRequest sub = GORT__V1__SUBMIT_REQUEST__INIT;
	char *args[] = { "a", "béta", "" };
	sub.name = "n";
	sub.args = args;
	sub.n_args = 3;
	sub.wait = true;
	sub.stdio = true;
	sub.stack_size = 1 << 20;
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = 7;
	Gort__V1__KillRequest k = GORT__V1__KILL_REQUEST__INIT;
	k.task_id = UINT64_MAX;
	Gort__V1__PsRequest ps = GORT__V1__PS_REQUEST__INIT;
	Gort__V1__PluginUnloadRequest pu = GORT__V1__PLUGIN_UNLOAD_REQUEST__INIT;
	pu.name = "x";
	Gort__V1__Request reqs[4] = { GORT__V1__REQUEST__INIT, GORT__V1__REQUEST__INIT, GORT__V1__REQUEST__INIT,
				      GORT__V1__REQUEST__INIT };
	reqs[0].body_case = GORT__V1__REQUEST__BODY_SUBMIT, reqs[0].submit = &sub, reqs[0].nfds = 4;
	reqs[1].body_case = GORT__V1__REQUEST__BODY_WAIT, reqs[1].wait = &w;
	reqs[2].body_case = GORT__V1__REQUEST__BODY_KILL, reqs[2].kill = &k;
	reqs[3].body_case = GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD, reqs[3].plugin_unload = &pu;
	(void)ps;
	for (int i = 0; i < 4; i++) {
		reqs[i].id = (uint64_t)i + 1;
		uint8_t *frame;
		size_t len;
		assert_ok(wire_frame_pack(&reqs[i].base, WIRE_REQUEST_MAX, &frame, &len));
		struct wire_reader r;
		wire_reader_init(&r, WIRE_REQUEST_MAX);
		size_t used;
		ck_assert_int_eq(wire_reader_feed(&r, frame, len, &used), WIRE_FRAME);
		ck_assert_uint_eq(used, len);
		uint8_t *body;
		uint32_t blen;
		int fds[WIRE_FDS_MAX];
		unsigned nfds;
		wire_reader_take(&r, &body, &blen, fds, &nfds);
		ck_assert_uint_eq(blen, len - 4);
		ck_assert_uint_eq(nfds, 0);
		Gort__V1__Request *got;
		const char *why = NULL;
		assert_ok(wire_request_unpack(body, blen, &got, &why));
		ck_assert_uint_eq(got->id, (uint64_t)i + 1);
		ck_assert_int_eq(got->body_case, reqs[i].body_case);
		if (i == 0) {
			ck_assert_uint_eq(got->submit->n_args, 3);
			ck_assert_str_eq(got->submit->args[1], "béta");
			ck_assert(got->submit->wait && got->submit->stdio);
			ck_assert_uint_eq(got->nfds, 4);
		}
		if (i == 2)
			ck_assert_uint_eq(got->kill->task_id, UINT64_MAX);
		gort__v1__request__free_unpacked(got, NULL);
		free(body);
		free(frame);
		wire_reader_deinit(&r);
	}
}
END_TEST

/* The events request and reply: every field across the wire, and the
 * validator refusing what protobuf-c would misread. */
START_TEST(test_events_messages)
{
	Gort__V1__EventsRequest er = GORT__V1__EVENTS_REQUEST__INIT;
	er.task_id = 12;
	er.follow = true;
	er.duration_ms = 3600000;
	er.live_only = true;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.id = 5;
	req.body_case = GORT__V1__REQUEST__BODY_EVENTS;
	req.events = &er;
	uint8_t buf[256];
	size_t n = pack_request(&req, buf, sizeof buf);
	Gort__V1__Request *got;
	const char *why = NULL;
	assert_ok(wire_request_unpack(buf, n, &got, &why));
	ck_assert_int_eq(got->body_case, GORT__V1__REQUEST__BODY_EVENTS);
	ck_assert_str_eq(wire_request_name(got), "events");
	ck_assert_uint_eq(got->events->task_id, 12);
	ck_assert(got->events->follow && got->events->live_only);
	ck_assert_uint_eq(got->events->duration_ms, 3600000);
	gort__v1__request__free_unpacked(got, NULL);

	/* events { follow: "x" } (a length where a varint belongs), events as a varint */
	static const uint8_t bad1[] = { 0xa2, 0x01, 0x03, 0x12, 0x01, 'x' };
	static const uint8_t bad2[] = { 0xa0, 0x01, 0x01 };
	ck_assert_ptr_nonnull(why_request(bad1, sizeof bad1));
	ck_assert_ptr_nonnull(why_request(bad2, sizeof bad2));
	ck_assert_int_eq(wire_request_unpack(bad1, sizeof bad1, &got, NULL), -EBADMSG);

	/* a reply with events, and one whose entry is not UTF-8 */
	Gort__V1__Event ev = GORT__V1__EVENT__INIT, *evs[2] = { &ev, &ev };
	ev.kind = 3;
	ev.time_ns = 123456789;
	ev.task_id = 2;
	ev.goid = -1;
	ev.arg = INT64_MIN;
	ev.proc = -1;
	ev.m = 7;
	ev.reason = 3;
	ev.wait = "chan receive";
	ev.entry = "trace_worker";
	Gort__V1__EventsReply rep = GORT__V1__EVENTS_REPLY__INIT;
	rep.n_events = 2;
	rep.events = evs;
	rep.missed = 9;
	rep.end = true;
	rep.unix_offset_ns = -5;
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = 5;
	reply.body_case = GORT__V1__REPLY__BODY_EVENTS;
	reply.events = &rep;
	uint8_t rbuf[512];
	ck_assert_uint_le(gort__v1__reply__get_packed_size(&reply), sizeof rbuf);
	size_t rn = gort__v1__reply__pack(&reply, rbuf);
	Gort__V1__Reply *rgot;
	assert_ok(wire_reply_unpack(rbuf, rn, &rgot, &why));
	ck_assert_uint_eq(rgot->events->n_events, 2);
	ck_assert_str_eq(rgot->events->events[1]->wait, "chan receive");
	ck_assert_int_eq(rgot->events->events[0]->arg, INT64_MIN);
	ck_assert_int_eq(rgot->events->events[0]->goid, -1);
	ck_assert_uint_eq(rgot->events->missed, 9);
	ck_assert(rgot->events->end);
	gort__v1__reply__free_unpacked(rgot, NULL);
	ev.entry = "\xff";
	rn = gort__v1__reply__pack(&reply, rbuf);
	ck_assert_int_eq(wire_reply_unpack(rbuf, rn, &rgot, &why), -EBADMSG);
}
END_TEST

START_TEST(test_reader_byte_by_byte_and_back_to_back)
{
	Gort__V1__Request a = stats_request(1), b = stats_request(2);
	uint8_t *fa, *fb;
	size_t la, lb;
	assert_ok(wire_frame_pack(&a.base, WIRE_REQUEST_MAX, &fa, &la));
	assert_ok(wire_frame_pack(&b.base, WIRE_REQUEST_MAX, &fb, &lb));
	uint8_t stream[64];
	memcpy(stream, fa, la);
	memcpy(stream + la, fb, lb);

	struct wire_reader r;
	wire_reader_init(&r, WIRE_REQUEST_MAX);
	/* One byte at a time: WIRE_MORE until the last byte of the first frame. */
	size_t off = 0, used;
	int ret = WIRE_MORE;
	while (ret == WIRE_MORE) {
		ret = wire_reader_feed(&r, stream + off, 1, &used);
		off += used;
	}
	ck_assert_int_eq(ret, WIRE_FRAME);
	ck_assert_uint_eq(off, la);
	/* A ready frame consumes nothing more until taken. */
	ck_assert_int_eq(wire_reader_feed(&r, stream + off, lb, &used), WIRE_FRAME);
	ck_assert_uint_eq(used, 0);
	uint8_t *body;
	uint32_t blen;
	int fds[WIRE_FDS_MAX];
	unsigned nfds;
	wire_reader_take(&r, &body, &blen, fds, &nfds);
	free(body);
	/* The rest in one feed: exactly the second frame is consumed. */
	ck_assert_int_eq(wire_reader_feed(&r, stream + off, lb + 0, &used), WIRE_FRAME);
	ck_assert_uint_eq(used, lb);
	wire_reader_take(&r, &body, &blen, fds, &nfds);
	Gort__V1__Request *got;
	assert_ok(wire_request_unpack(body, blen, &got, NULL));
	ck_assert_uint_eq(got->id, 2);
	gort__v1__request__free_unpacked(got, NULL);
	free(body);
	/* End of stream between frames is a clean EOF. */
	ck_assert_int_eq(wire_reader_feed(&r, NULL, 0, &used), WIRE_EOF);
	wire_reader_deinit(&r);
	free(fa);
	free(fb);
}
END_TEST

START_TEST(test_reader_empty_frame)
{
	static const uint8_t zero[4] = { 0, 0, 0, 0 };
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REQUEST_MAX);
	size_t used;
	ck_assert_int_eq(wire_reader_feed(&r, zero, 4, &used), WIRE_FRAME);
	uint8_t *body;
	uint32_t blen;
	int fds[WIRE_FDS_MAX];
	unsigned nfds;
	wire_reader_take(&r, &body, &blen, fds, &nfds);
	ck_assert_uint_eq(blen, 0);
	/* An empty body is a valid Request with no body: the daemon's "unknown request type". */
	Gort__V1__Request *got;
	assert_ok(wire_request_unpack(body, blen, &got, NULL));
	ck_assert_int_eq(got->body_case, GORT__V1__REQUEST__BODY__NOT_SET);
	gort__v1__request__free_unpacked(got, NULL);
	free(body);
	wire_reader_deinit(&r);
}
END_TEST

START_TEST(test_reader_oversized)
{
	/* One byte over the limit, and the largest length there is. */
	uint32_t lens[] = { WIRE_REQUEST_MAX + 1, UINT32_MAX };
	for (int i = 0; i < 2; i++) {
		uint8_t hdr[4] = { (uint8_t)lens[i], (uint8_t)(lens[i] >> 8), (uint8_t)(lens[i] >> 16),
				   (uint8_t)(lens[i] >> 24) };
		struct wire_reader r;
		wire_reader_init(&r, WIRE_REQUEST_MAX);
		size_t used;
		ck_assert_int_eq(wire_reader_feed(&r, hdr, 4, &used), -EMSGSIZE);
		wire_reader_deinit(&r);
	}
	/* Exactly the limit is accepted (the body then arrives in growing chunks). */
	uint8_t hdr[4] = { 0, 0, 0x10, 0 };
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REQUEST_MAX);
	size_t used;
	ck_assert_int_eq(wire_reader_feed(&r, hdr, 4, &used), WIRE_MORE);
	static uint8_t big[WIRE_REQUEST_MAX];
	ck_assert_int_eq(wire_reader_feed(&r, big, sizeof big, &used), WIRE_FRAME);
	ck_assert_uint_eq(used, sizeof big);
	wire_reader_deinit(&r);
}
END_TEST

START_TEST(test_reader_truncated)
{
	Gort__V1__Request a = stats_request(1);
	uint8_t *f;
	size_t len;
	assert_ok(wire_frame_pack(&a.base, WIRE_REQUEST_MAX, &f, &len));
	/* The stream ends inside the header, and inside the body. */
	size_t cuts[] = { 2, len - 1 };
	for (int i = 0; i < 2; i++) {
		struct wire_reader r;
		wire_reader_init(&r, WIRE_REQUEST_MAX);
		size_t used;
		ck_assert_int_eq(wire_reader_feed(&r, f, cuts[i], &used), WIRE_MORE);
		ck_assert_int_eq(wire_reader_feed(&r, NULL, 0, &used), -EPROTO);
		wire_reader_deinit(&r);
	}
	free(f);
}
END_TEST

/* ---- the validator ---- */

START_TEST(test_validate_garbage)
{
	/* Bytes that are no protobuf at all: every one of these must be refused. */
	static const struct {
		const char *name;
		uint8_t bytes[16];
		size_t n;
	} cases[] = {
		{ "group start (wire type 3)", { 0x0b }, 1 },
		{ "group end (wire type 4)", { 0x0c }, 1 },
		{ "wire type 6", { 0x0e, 0 }, 2 },
		{ "wire type 7", { 0x0f, 0 }, 2 },
		{ "field number 0", { 0x00, 0x01 }, 2 },
		{ "key varint never ends", { 0x80, 0x80, 0x80 }, 3 },
		{ "key varint of 11 bytes", { 0x88, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }, 11 },
		{ "value varint cut", { 0x08, 0xff }, 2 },
		{ "value varint 10th byte > 1", { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 }, 11 },
		{ "length past the end", { 0x52, 0x05, 0x00 }, 3 },
		{ "huge length", { 0x52, 0xff, 0xff, 0xff, 0xff, 0x0f }, 6 },
		{ "fixed64 cut", { 0x09, 1, 2, 3 }, 4 },
		{ "fixed32 cut", { 0x0d, 1, 2 }, 3 },
		{ "id as a string", { 0x0a, 0x01, 'x' }, 3 },
		{ "submit as a varint", { 0x50, 0x01 }, 2 },
		{ "id twice", { 0x08, 0x01, 0x08, 0x02 }, 4 },
		{ "two members of the body oneof", { 0x9a, 0x01, 0x00, 0x52, 0x00 }, 5 },
		{ "one oneof member twice", { 0x9a, 0x01, 0x00, 0x9a, 0x01, 0x00 }, 6 },
		{ "bad submessage", { 0x52, 0x02, 0x0b, 0x00 }, 4 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *why = why_request(cases[i].bytes, cases[i].n);
		ck_assert_msg(why != NULL, "accepted: %s", cases[i].name);
		/* protobuf-c is never reached: but it must not take them either way */
		Gort__V1__Request *got = NULL;
		ck_assert_int_eq(wire_request_unpack(cases[i].bytes, cases[i].n, &got, NULL), -EBADMSG);
	}
}
END_TEST

START_TEST(test_validate_strings)
{
	/* submit { name: <bytes> } = 0x52 len 0x0a len bytes */
	static const struct {
		const char *name;
		const char *s;
		size_t n;
		bool ok;
	} cases[] = {
		{ "ascii", "task", 4, true },
		{ "two-byte", "\xc3\xa9", 2, true },
		{ "four-byte", "\xf0\x9f\x98\x80", 4, true },
		{ "embedded NUL", "a\0b", 3, false },
		{ "lone continuation", "\x80", 1, false },
		{ "overlong slash", "\xc0\xaf", 2, false },
		{ "surrogate", "\xed\xa0\x80", 3, false },
		{ "past U+10FFFF", "\xf4\x90\x80\x80", 4, false },
		{ "cut sequence", "\xe2\x82", 2, false },
		{ "0xff", "\xff", 1, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t buf[32];
		size_t n = cases[i].n;
		buf[0] = 0x52;
		buf[1] = (uint8_t)(n + 2);
		buf[2] = 0x0a;
		buf[3] = (uint8_t)n;
		memcpy(buf + 4, cases[i].s, n);
		const char *why = why_request(buf, n + 4);
		ck_assert_msg((why == NULL) == cases[i].ok, "%s: %s", cases[i].name, why ? why : "accepted");
		if (!cases[i].ok)
			ck_assert_str_eq(why, "string is not valid UTF-8 or contains NUL");
	}
}
END_TEST

START_TEST(test_validate_repeated_limit)
{
	/* submit with WIRE_REQUEST_REPEATED_MAX args passes; one more is refused. */
	for (int extra = 0; extra <= 1; extra++) {
		size_t n = WIRE_REQUEST_REPEATED_MAX + (size_t)extra;
		char **args = calloc(n, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			args[i] = "";
		Gort__V1__SubmitRequest sub = GORT__V1__SUBMIT_REQUEST__INIT;
		sub.args = args;
		sub.n_args = n;
		Gort__V1__Request req = GORT__V1__REQUEST__INIT;
		req.body_case = GORT__V1__REQUEST__BODY_SUBMIT;
		req.submit = &sub;
		static uint8_t buf[16384];
		size_t len = pack_request(&req, buf, sizeof buf);
		const char *why = why_request(buf, len);
		if (extra)
			ck_assert_str_eq(why, "too many elements in a repeated field");
		else
			ck_assert_ptr_null(why);
		free(args);
	}
}
END_TEST

START_TEST(test_validate_packed)
{
	/* StatsReply.sched.local_runq is a packed repeated int32 (Reply field 19,
	 * StatsReply.sched 1, SchedStats.local_runq 8). */
	static const uint8_t good[] = { 0x9a, 0x01, 0x06, 0x0a, 0x04, 0x42, 0x02, 0x01, 0x02 };
	static const uint8_t bad[] = { 0x9a, 0x01, 0x06, 0x0a, 0x04, 0x42, 0x02, 0x01, 0x82 };
	const char *why = NULL;
	assert_ok(wire_validate(&gort__v1__reply__descriptor, good, sizeof good, 16, &why));
	ck_assert_int_eq(wire_validate(&gort__v1__reply__descriptor, bad, sizeof bad, 16, &why), -EBADMSG);
	ck_assert_str_eq(why, "malformed packed field");
	Gort__V1__Reply *reply;
	assert_ok(wire_reply_unpack(good, sizeof good, &reply, NULL));
	ck_assert_uint_eq(reply->stats->sched->n_local_runq, 2);
	ck_assert_int_eq(reply->stats->sched->local_runq[1], 2);
	gort__v1__reply__free_unpacked(reply, NULL);
	/* Unpacked elements of a repeated scalar count the same. */
	static const uint8_t many[] = { 0x9a, 0x01, 0x08, 0x0a, 0x06, 0x40, 0x01, 0x40, 0x02, 0x40, 0x03 };
	ck_assert_int_eq(wire_validate(&gort__v1__reply__descriptor, many, sizeof many, 2, &why), -EBADMSG);
	assert_ok(wire_validate(&gort__v1__reply__descriptor, many, sizeof many, 3, &why));
}
END_TEST

START_TEST(test_validate_unknown_fields_kept)
{
	/* A newer client's field 99 (varint) and field 100 (bytes) next to stats. */
	static const uint8_t buf[] = { 0x08, 0x05, 0x9a, 0x01, 0x00, 0x98, 0x06, 0x07, 0xa2, 0x06, 0x01, 'z' };
	Gort__V1__Request *got;
	assert_ok(wire_request_unpack(buf, sizeof buf, &got, NULL));
	ck_assert_int_eq(got->body_case, GORT__V1__REQUEST__BODY_STATS);
	ck_assert_uint_eq(got->id, 5);
	ck_assert_uint_eq(got->base.n_unknown_fields, 2);
	gort__v1__request__free_unpacked(got, NULL);
	/* An unknown body (a future request type, field 25) leaves the oneof unset. */
	static const uint8_t future[] = { 0x08, 0x01, 0xca, 0x01, 0x00 };
	assert_ok(wire_request_unpack(future, sizeof future, &got, NULL));
	ck_assert_int_eq(got->body_case, GORT__V1__REQUEST__BODY__NOT_SET);
	ck_assert_uint_eq(got->base.unknown_fields[0].tag, 25);
	gort__v1__request__free_unpacked(got, NULL);
}
END_TEST

/* A message type that contains itself, to reach the nesting limit (gort.v1
 * itself nests only three deep). */
static const ProtobufCMessageDescriptor nest_desc;
static const ProtobufCFieldDescriptor nest_fields[] = {
	{ "inner", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, 0, 0, &nest_desc, NULL, 0, 0, NULL, NULL },
};
static const unsigned nest_by_name[] = { 0 };
static const ProtobufCIntRange nest_ranges[] = { { 1, 0 }, { 0, 1 } };
static const ProtobufCMessageDescriptor nest_desc = {
	PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "t.Nest", "Nest", "Nest", "t", sizeof(ProtobufCMessage) + 8, 1,
	nest_fields, nest_by_name, 1, nest_ranges, NULL, NULL, NULL, NULL,
};

START_TEST(test_validate_depth)
{
	/* depth levels of "inner { inner { ... } }" */
	for (int depth = WIRE_DEPTH_MAX - 1; depth <= WIRE_DEPTH_MAX; depth++) {
		uint8_t buf[64];
		size_t n = 0;
		for (int i = 0; i < depth; i++) {
			buf[n++] = 0x0a;
			buf[n++] = (uint8_t)(2 * (depth - 1 - i));
		}
		const char *why = NULL;
		int r = wire_validate(&nest_desc, buf, n, 16, &why);
		if (depth < WIRE_DEPTH_MAX)
			assert_ok(r);
		else {
			ck_assert_int_eq(r, -EBADMSG);
			ck_assert_str_eq(why, "messages nested too deeply");
		}
	}
}
END_TEST

START_TEST(test_validate_random_bytes)
{
	/* Random input: never a crash, and whatever the validator accepts
	 * protobuf-c must unpack. */
	uint32_t seed = 12345;
	uint8_t buf[64];
	long accepted = 0, n = scaled(200000);
	for (long it = 0; it < n; it++) {
		size_t len = (size_t)(seed % sizeof buf);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			buf[i] = (uint8_t)(seed >> 16);
		}
		seed = seed * 1103515245 + 12345;
		Gort__V1__Request *got = NULL;
		if (wire_validate(&gort__v1__request__descriptor, buf, len, WIRE_REQUEST_REPEATED_MAX, NULL) == 0) {
			accepted++;
			assert_ok(wire_request_unpack(buf, len, &got, NULL));
			gort__v1__request__free_unpacked(got, NULL);
		}
	}
	ck_assert_int_gt(accepted, 0);
}
END_TEST

/* ---- fds over a socket ---- */

static int raw_send_fds(int sock, const void *data, size_t n, const int *fds, int nfds)
{
	char control[CMSG_SPACE(sizeof(int) * 16)];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	return (int)sendmsg(sock, &mh, 0);
}

START_TEST(test_fds_received_cloexec)
{
	int sv[2];
	assert_posix(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	Gort__V1__Request a = stats_request(1);
	uint8_t *f;
	size_t len;
	assert_ok(wire_frame_pack(&a.base, WIRE_REQUEST_MAX, &f, &len));
	int fds[2] = { 0, 1 };
	assert_ok(wire_send(sv[0], f, len, fds, 2));
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REQUEST_MAX);
	int ret;
	do
		ret = wire_reader_recv(&r, sv[1]);
	while (ret == WIRE_MORE);
	ck_assert_int_eq(ret, WIRE_FRAME);
	uint8_t *body;
	uint32_t blen;
	int got[WIRE_FDS_MAX];
	unsigned n;
	wire_reader_take(&r, &body, &blen, got, &n);
	ck_assert_uint_eq(n, 2);
	for (unsigned i = 0; i < n; i++) {
		ck_assert(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
		close(got[i]);
	}
	free(body);
	free(f);
	/* The peer closes: a clean EOF. */
	close(sv[0]);
	ck_assert_int_eq(wire_reader_recv(&r, sv[1]), WIRE_EOF);
	wire_reader_deinit(&r);
	close(sv[1]);
}
END_TEST

START_TEST(test_fds_too_many)
{
	int before = test_fd_count();
	int sv[2];
	assert_posix(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* wire_send refuses to send more than the limit */
	uint8_t hdr[4] = { 0 };
	int fds[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
	ck_assert_int_eq(wire_send(sv[0], hdr, 4, fds, 8), -ETOOMANYREFS);
	/* and a raw sender's extra fds are refused on receipt (MSG_CTRUNC), none leaking */
	ck_assert_int_eq(raw_send_fds(sv[0], hdr, 4, fds, 8), 4);
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REQUEST_MAX);
	ck_assert_int_eq(wire_reader_recv(&r, sv[1]), -ETOOMANYREFS);
	wire_reader_deinit(&r);
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(test_fd_count(), before);
}
END_TEST

START_TEST(test_fds_nonblocking_eagain)
{
	int sv[2];
	assert_posix(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv));
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REQUEST_MAX);
	ck_assert_int_eq(wire_reader_recv(&r, sv[1]), -EAGAIN);
	/* half a header, then nothing: still waiting, not an error */
	assert_posix(write(sv[0], "\x02\x00", 2));
	ck_assert_int_eq(wire_reader_recv(&r, sv[1]), WIRE_MORE);
	ck_assert_int_eq(wire_reader_recv(&r, sv[1]), -EAGAIN);
	/* the peer vanishes mid-frame: truncated */
	close(sv[0]);
	ck_assert_int_eq(wire_reader_recv(&r, sv[1]), -EPROTO);
	wire_reader_deinit(&r);
	close(sv[1]);
}
END_TEST

START_TEST(test_default_socket)
{
	char buf[108];
	setenv("GORT_SOCKET", "/tmp/x.sock", 1);
	assert_ok(wire_default_socket(buf, sizeof buf));
	ck_assert_str_eq(buf, "/tmp/x.sock");
	unsetenv("GORT_SOCKET");
	assert_ok(wire_default_socket(buf, sizeof buf));
	if (geteuid() == 0)
		ck_assert_str_eq(buf, "/run/gort/gortd.sock");
	ck_assert_int_eq(wire_default_socket(buf, 4), -ENAMETOOLONG);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("frames");
	tcase_add_test(tc, test_roundtrip_every_request);
	tcase_add_test(tc, test_events_messages);
	tcase_add_test(tc, test_reader_byte_by_byte_and_back_to_back);
	tcase_add_test(tc, test_reader_empty_frame);
	tcase_add_test(tc, test_reader_oversized);
	tcase_add_test(tc, test_reader_truncated);
	suite_add_tcase(s, tc);
	tc = tcase_create("validate");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_validate_garbage);
	tcase_add_test(tc, test_validate_strings);
	tcase_add_test(tc, test_validate_repeated_limit);
	tcase_add_test(tc, test_validate_packed);
	tcase_add_test(tc, test_validate_unknown_fields_kept);
	tcase_add_test(tc, test_validate_depth);
	tcase_add_test(tc, test_validate_random_bytes);
	suite_add_tcase(s, tc);
	tc = tcase_create("fds");
	tcase_add_test(tc, test_fds_received_cloexec);
	tcase_add_test(tc, test_fds_too_many);
	tcase_add_test(tc, test_fds_nonblocking_eagain);
	tcase_add_test(tc, test_default_socket);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(wire_suite());
}
