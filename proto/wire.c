/* proto/wire.c: frames (length prefix, SCM_RIGHTS), the pre-parse validator, packing and unpacking of gort.v1 messages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

/*
 * protobuf-c 1.4.1 (Debian 12) has unpacking bugs fixed only in later
 * releases, and its parser was not written for hostile input. So nothing from a
 * socket reaches it unchecked: wire_validate walks the encoding first against
 * the same descriptors protobuf-c uses, and refuses anything our own encoder
 * would never produce (a field or oneof given twice, groups, malformed varints,
 * lengths past the end, bad UTF-8) or that would make the parser allocate out of
 * proportion (deep nesting, huge repeated counts). Unknown fields with sound
 * encodings are accepted, so that older daemons keep working with newer
 * clients. tests/fuzz-wire.c fuzzes the decoder and this validator together
 * with protobuf-c and the daemon's dispatch.
 */

#define BODY_CHUNK (64u * 1024)

/* ---- the frame decoder ---- */

void wire_reader_init(struct wire_reader *r, uint32_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max;
}

static void reader_close_fds(struct wire_reader *r)
{
	for (unsigned i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	r->nfds = 0;
}

void wire_reader_deinit(struct wire_reader *r)
{
	uint32_t max = r->max;
	free(r->body);
	reader_close_fds(r);
	wire_reader_init(r, max);
}

static bool reader_ready(const struct wire_reader *r)
{
	return r->hdr_got == WIRE_HEADER_SIZE && r->got == r->len;
}

/* Where the next bytes of the current frame go and how many it still needs.
 * The body buffer grows as bytes arrive rather than to the announced length at
 * once, so a client that announces 1 MiB and sends nothing costs little. */
static int reader_want(struct wire_reader *r, uint8_t **ret_ptr, size_t *ret_n)
{
	if (r->hdr_got < WIRE_HEADER_SIZE) {
		*ret_ptr = r->hdr + r->hdr_got;
		*ret_n = WIRE_HEADER_SIZE - r->hdr_got;
		return 0;
	}
	if (r->got == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : BODY_CHUNK;
		if (cap > r->len)
			cap = r->len;
		uint8_t *b = realloc(r->body, cap);
		if (!b)
			return -ENOMEM;
		r->body = b;
		r->cap = cap;
	}
	*ret_ptr = r->body + r->got;
	*ret_n = r->cap - r->got;
	return 0;
}

/* Accounts for n bytes stored where reader_want said. */
static int reader_advance(struct wire_reader *r, size_t n)
{
	if (r->hdr_got < WIRE_HEADER_SIZE) {
		r->hdr_got += (uint32_t)n;
		if (r->hdr_got < WIRE_HEADER_SIZE)
			return WIRE_MORE;
		r->len = (uint32_t)r->hdr[0] | (uint32_t)r->hdr[1] << 8 | (uint32_t)r->hdr[2] << 16 |
			 (uint32_t)r->hdr[3] << 24;
		if (r->len > r->max)
			return -EMSGSIZE;
		r->got = 0;
		return r->len == 0 ? WIRE_FRAME : WIRE_MORE;
	}
	r->got += (uint32_t)n;
	return r->got == r->len ? WIRE_FRAME : WIRE_MORE;
}

int wire_reader_feed(struct wire_reader *r, const uint8_t *data, size_t n, size_t *ret_used)
{
	size_t used = 0;
	int ret = WIRE_MORE;
	if (reader_ready(r)) {
		*ret_used = 0;
		return WIRE_FRAME;
	}
	if (n == 0) {
		*ret_used = 0;
		return r->hdr_got == 0 && r->nfds == 0 ? WIRE_EOF : -EPROTO;
	}
	while (used < n) {
		uint8_t *p;
		size_t want;
		int k = reader_want(r, &p, &want);
		if (k < 0)
			return k;
		if (want > n - used)
			want = n - used;
		memcpy(p, data + used, want);
		used += want;
		ret = reader_advance(r, want);
		if (ret != WIRE_MORE)
			break;
	}
	*ret_used = used;
	return ret;
}

int wire_reader_recv(struct wire_reader *r, int fd)
{
	if (reader_ready(r))
		return WIRE_FRAME;
	uint8_t *p;
	size_t want;
	int k = reader_want(r, &p, &want);
	if (k < 0)
		return k;

	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * WIRE_FDS_MAX)];
	} control;
	struct iovec iov = { .iov_base = p, .iov_len = want };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof control.buf,
	};
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	/* Take every fd the kernel installed before judging the frame, so that
	 * none leaks whatever the verdict. */
	int bad = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = -EBADMSG;
			continue;
		}
		size_t k2 = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < k2; i++) {
			int f;
			memcpy(&f, fds + i, sizeof f);
			if (r->nfds < WIRE_FDS_MAX)
				r->fds[r->nfds++] = f;
			else {
				close(f);
				bad = -ETOOMANYREFS;
			}
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		bad = -ETOOMANYREFS;
	if (bad < 0)
		return bad;
	if (n == 0)
		return r->hdr_got == 0 && r->nfds == 0 ? WIRE_EOF : -EPROTO;
	return reader_advance(r, (size_t)n);
}

void wire_reader_take(struct wire_reader *r, uint8_t **ret_body, uint32_t *ret_len,
		      int *ret_fds, unsigned *ret_nfds)
{
	*ret_body = r->body;
	*ret_len = r->len;
	memcpy(ret_fds, r->fds, sizeof(int) * r->nfds);
	*ret_nfds = r->nfds;
	uint32_t max = r->max;
	wire_reader_init(r, max);
}

/* ---- the validator ---- */

struct vstate {
	uint32_t max_repeated;
	const char *why;
};

static int vfail(struct vstate *st, const char *why)
{
	st->why = why;
	return -EBADMSG;
}

/* A varint of at most 10 bytes whose 10th byte holds only the 64th bit. */
static int varint_read(const uint8_t *p, size_t n, uint64_t *ret, size_t *ret_used)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n && i < 10; i++) {
		uint8_t b = p[i];
		if (i == 9 && b > 1)
			return -1;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*ret = v;
			*ret_used = i + 1;
			return 0;
		}
	}
	return -1;
}

/* Strict UTF-8 (no overlong forms, surrogates or values past U+10FFFF), no NUL:
 * protobuf-c hands strings out NUL-terminated, so an embedded NUL would
 * silently cut a name short. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

enum wkind { K_VARINT, K_FIXED32, K_FIXED64, K_LEN };

static enum wkind field_kind(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_BOOL:
	case PROTOBUF_C_TYPE_ENUM:
		return K_VARINT;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return K_FIXED32;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return K_FIXED64;
	default:
		return K_LEN;
	}
}

static const uint8_t kind_wiretype[] = { [K_VARINT] = 0, [K_FIXED32] = 5, [K_FIXED64] = 1, [K_LEN] = 2 };

/* Elements in a packed run of kind k, or -1 if the run is malformed. */
static long packed_count(enum wkind k, const uint8_t *p, size_t n)
{
	if (k == K_FIXED32)
		return n % 4 ? -1 : (long)(n / 4);
	if (k == K_FIXED64)
		return n % 8 ? -1 : (long)(n / 8);
	long count = 0;
	size_t pos = 0;
	while (pos < n) {
		uint64_t v;
		size_t u;
		if (varint_read(p + pos, n - pos, &v, &u) < 0)
			return -1;
		pos += u;
		count++;
	}
	return count;
}

#define VALIDATE_FIELDS_MAX 64

static int validate(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		    unsigned depth, struct vstate *st)
{
	if (depth > WIRE_DEPTH_MAX)
		return vfail(st, "messages nested too deeply");
	if (desc->n_fields > VALIDATE_FIELDS_MAX)
		return vfail(st, "message type too large to check");
	uint32_t count[VALIDATE_FIELDS_MAX] = { 0 };

	size_t pos = 0;
	while (pos < len) {
		uint64_t key, v;
		size_t u;
		if (varint_read(buf + pos, len - pos, &key, &u) < 0)
			return vfail(st, "malformed field key");
		pos += u;
		uint64_t num = key >> 3;
		unsigned wt = key & 7;
		if (num == 0 || num > 536870911)
			return vfail(st, "invalid field number");

		const uint8_t *val = buf + pos;
		size_t vlen;
		switch (wt) {
		case 0:
			if (varint_read(val, len - pos, &v, &vlen) < 0)
				return vfail(st, "malformed varint");
			break;
		case 1:
			vlen = 8;
			break;
		case 5:
			vlen = 4;
			break;
		case 2:
			if (varint_read(val, len - pos, &v, &u) < 0)
				return vfail(st, "malformed length");
			pos += u;
			val += u;
			if (v > len - pos)
				return vfail(st, "length past the end of the message");
			vlen = (size_t)v;
			break;
		default:
			return vfail(st, "unsupported wire type (groups are not used)");
		}
		if (vlen > len - pos)
			return vfail(st, "field past the end of the message");
		pos += vlen;

		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, (unsigned)num);
		if (!f)
			continue; /* unknown: kept aside by protobuf-c, ignored by the daemon */
		size_t idx = (size_t)(f - desc->fields);
		enum wkind k = field_kind(f->type);
		bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
		uint64_t elems = 1;

		if (wt != kind_wiretype[k]) {
			if (!(repeated && k != K_LEN && wt == 2))
				return vfail(st, "field has the wrong wire type");
			long c = packed_count(k, val, vlen);
			if (c < 0)
				return vfail(st, "malformed packed field");
			elems = (uint64_t)c;
		}
		if (!repeated && count[idx] > 0)
			return vfail(st, "field given twice");
		if (count[idx] + elems > st->max_repeated)
			return vfail(st, "too many elements in a repeated field");
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			for (unsigned j = 0; j < desc->n_fields; j++)
				if (j != idx && count[j] > 0 && (desc->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
				    desc->fields[j].quantifier_offset == f->quantifier_offset)
					return vfail(st, "two members of one oneof");
		}
		count[idx] += (uint32_t)elems;

		if (f->type == PROTOBUF_C_TYPE_STRING && !utf8_valid(val, vlen))
			return vfail(st, "string is not valid UTF-8 or contains NUL");
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			int r = validate(f->descriptor, val, vlen, depth + 1, st);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int wire_validate(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		  uint32_t max_repeated, const char **ret_why)
{
	struct vstate st = { .max_repeated = max_repeated, .why = NULL };
	int r = validate(desc, buf, len, 1, &st);
	if (r < 0 && ret_why)
		*ret_why = st.why;
	return r;
}

static int unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		  uint32_t max_repeated, ProtobufCMessage **ret, const char **ret_why)
{
	int r = wire_validate(desc, buf, len, max_repeated, ret_why);
	if (r < 0)
		return r;
	/* protobuf-c reads nothing for an empty buffer but wants a pointer. */
	static const uint8_t empty[1];
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, buf ? buf : empty);
	if (!m) {
		if (ret_why)
			*ret_why = "not a valid message";
		return -EBADMSG;
	}
	*ret = m;
	return 0;
}

int wire_request_unpack(const uint8_t *buf, size_t len, Gort__V1__Request **ret, const char **ret_why)
{
	return unpack(&gort__v1__request__descriptor, buf, len, WIRE_REQUEST_REPEATED_MAX,
		      (ProtobufCMessage **)ret, ret_why);
}

int wire_reply_unpack(const uint8_t *buf, size_t len, Gort__V1__Reply **ret, const char **ret_why)
{
	return unpack(&gort__v1__reply__descriptor, buf, len, WIRE_REPLY_REPEATED_MAX,
		      (ProtobufCMessage **)ret, ret_why);
}

/* ---- packing and sending ---- */

int wire_frame_pack(const ProtobufCMessage *msg, uint32_t max, uint8_t **ret, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	if (n > max)
		return -EMSGSIZE;
	uint8_t *buf = malloc(WIRE_HEADER_SIZE + n);
	if (!buf)
		return -ENOMEM;
	buf[0] = (uint8_t)n;
	buf[1] = (uint8_t)(n >> 8);
	buf[2] = (uint8_t)(n >> 16);
	buf[3] = (uint8_t)(n >> 24);
	protobuf_c_message_pack(msg, buf + WIRE_HEADER_SIZE);
	*ret = buf;
	*ret_len = WIRE_HEADER_SIZE + n;
	return 0;
}

int wire_send(int sock, const uint8_t *frame, size_t len, const int *fds, unsigned nfds)
{
	if (nfds > WIRE_FDS_MAX)
		return -ETOOMANYREFS;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * WIRE_FDS_MAX)];
	} control;
	memset(&control, 0, sizeof control);
	size_t off = 0;
	while (off < len) {
		struct iovec iov = { .iov_base = (void *)(frame + off), .iov_len = len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (off == 0 && nfds > 0) {
			mh.msg_control = control.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

int wire_default_socket(char *buf, size_t n)
{
	const char *env = getenv("GORT_SOCKET");
	int k;
	if (env && *env)
		k = snprintf(buf, n, "%s", env);
	else if (geteuid() == 0)
		k = snprintf(buf, n, "/run/gort/gortd.sock");
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env == '/')
		k = snprintf(buf, n, "%s/gort/gortd.sock", env);
	else
		return -ENXIO;
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

const char *wire_request_name(const Gort__V1__Request *req)
{
	switch (req->body_case) {
	case GORT__V1__REQUEST__BODY_SUBMIT:
		return "submit";
	case GORT__V1__REQUEST__BODY_WAIT:
		return "wait";
	case GORT__V1__REQUEST__BODY_KILL:
		return "kill";
	case GORT__V1__REQUEST__BODY_TASKS:
		return "tasks";
	case GORT__V1__REQUEST__BODY_PS:
		return "ps";
	case GORT__V1__REQUEST__BODY_LOGS:
		return "logs";
	case GORT__V1__REQUEST__BODY_PLUGIN_LOAD:
		return "plugin load";
	case GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD:
		return "plugin unload";
	case GORT__V1__REQUEST__BODY_PLUGIN_LIST:
		return "plugin list";
	case GORT__V1__REQUEST__BODY_STATS:
		return "stats";
	case GORT__V1__REQUEST__BODY_EVENTS:
		return "events";
	default:
		return "unknown";
	}
}
