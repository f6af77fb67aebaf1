/* tests/fuzz-wire.c: libFuzzer target: a client's bytes through gortd's frame decoder, validator, protobuf-c and request dispatch. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/gortd.h"
#include "daemon/log.h"
#include "proto/wire.h"
#include "runtime.h"

/*
 * Input: byte 0 chooses the peer (bit 0: allowed to control or not) and how the
 * stream is cut into reads (bits 1-7: chunk size, 0 = all at once); the rest is
 * what a client sends on its connection. It goes through exactly the path of
 * a socket's bytes: wire_reader, wire_request_unpack (the validator, then
 * protobuf-c), the fd and authorization checks, handlers_dispatch against the
 * real runtime and task table, and conn_reply's packing. The oracle, besides
 * ASan/UBSan/LSan: every reply the daemon queued is itself a valid frame that
 * the client's decoder accepts.
 */

const char *arg_socket;
int arg_procs;
uid_t *arg_allow_uids;
size_t arg_n_allow_uids;
gid_t *arg_allow_gids;
size_t arg_n_allow_gids;
bool arg_foreground;

static void write_seed(const char *dir, const char *name, uint8_t selector, Gort__V1__Request **reqs, int n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/seed-%s", dir, name);
	FILE *f = fopen(path, "we");
	if (!f)
		return;
	fputc(selector, f);
	for (int i = 0; i < n; i++) {
		uint8_t *frame;
		size_t len;
		if (wire_frame_pack(&reqs[i]->base, WIRE_REQUEST_MAX, &frame, &len) == 0) {
			fwrite(frame, 1, len, f);
			free(frame);
		}
	}
	fclose(f);
}

/* A valid frame of every request type, so that the fuzzer starts from the
 * grammar rather than rediscovering it. */
static void write_seeds(const char *dir)
{
	mkdir(dir, 0755);
	Gort__V1__StatsRequest st = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__TasksRequest ta = GORT__V1__TASKS_REQUEST__INIT;
	Gort__V1__PsRequest ps = GORT__V1__PS_REQUEST__INIT;
	Gort__V1__LogsRequest lo = GORT__V1__LOGS_REQUEST__INIT;
	Gort__V1__WaitRequest wa = GORT__V1__WAIT_REQUEST__INIT;
	Gort__V1__KillRequest ki = GORT__V1__KILL_REQUEST__INIT;
	Gort__V1__PluginListRequest pl = GORT__V1__PLUGIN_LIST_REQUEST__INIT;
	Gort__V1__PluginUnloadRequest pu = GORT__V1__PLUGIN_UNLOAD_REQUEST__INIT;
	Gort__V1__PluginLoadRequest pd = GORT__V1__PLUGIN_LOAD_REQUEST__INIT;
	Gort__V1__SubmitRequest su = GORT__V1__SUBMIT_REQUEST__INIT;
	char *args[] = { "a", "b" };
	ps.task_id = 3;
	lo.task_id = 1;
	wa.task_id = 1;
	ki.task_id = 1;
	pu.name = "counter";
	pd.file = "p.so";
	su.name = "t";
	su.args = args;
	su.n_args = 2;
	su.wait = true;
	su.stdio = true;
	su.file = "t.so";
	Gort__V1__Request r[10];
	for (int i = 0; i < 10; i++) {
		gort__v1__request__init(&r[i]);
		r[i].id = (uint64_t)i + 1;
	}
	r[0].body_case = GORT__V1__REQUEST__BODY_STATS, r[0].stats = &st;
	r[1].body_case = GORT__V1__REQUEST__BODY_TASKS, r[1].tasks = &ta;
	r[2].body_case = GORT__V1__REQUEST__BODY_PS, r[2].ps = &ps;
	r[3].body_case = GORT__V1__REQUEST__BODY_LOGS, r[3].logs = &lo;
	r[4].body_case = GORT__V1__REQUEST__BODY_WAIT, r[4].wait = &wa;
	r[5].body_case = GORT__V1__REQUEST__BODY_KILL, r[5].kill = &ki;
	r[6].body_case = GORT__V1__REQUEST__BODY_PLUGIN_LIST, r[6].plugin_list = &pl;
	r[7].body_case = GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD, r[7].plugin_unload = &pu;
	r[8].body_case = GORT__V1__REQUEST__BODY_PLUGIN_LOAD, r[8].plugin_load = &pd;
	r[9].body_case = GORT__V1__REQUEST__BODY_SUBMIT, r[9].submit = &su;
	static const char *names[] = { "stats", "tasks", "ps", "logs", "wait", "kill", "plugin-list",
				       "plugin-unload", "plugin-load", "submit" };
	for (int i = 0; i < 10; i++) {
		Gort__V1__Request *one = &r[i];
		write_seed(dir, names[i], 1, &one, 1);
	}
	Gort__V1__Request *all[10];
	for (int i = 0; i < 10; i++)
		all[i] = &r[i];
	write_seed(dir, "all-control-chunked", 1 | (7 << 1), all, 10);
	write_seed(dir, "all-stranger", 0, all, 10);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_max_level = -1; /* the daemon's log would drown the fuzzer's */
	int r = runtime_start(2, 0);
	if (r < 0) {
		fprintf(stderr, "runtime_start: %s\n", strerror(-r));
		abort();
	}
	const char *seeds = getenv("GORT_FUZZ_SEEDS");
	if (seeds && *seeds)
		write_seeds(seeds);
	return 0;
}

/* Every queued reply must be a frame the client library decodes. */
static void check_output(const struct conn *c)
{
	const uint8_t *out;
	size_t len;
	server_conn_output(c, &out, &len);
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REPLY_MAX);
	size_t off = 0;
	while (off < len) {
		size_t used;
		int ret = wire_reader_feed(&r, out + off, len - off, &used);
		off += used;
		if (ret == WIRE_MORE)
			break; /* the fuzzer connection keeps only the latest replies */
		if (ret != WIRE_FRAME)
			abort();
		uint8_t *body;
		uint32_t blen;
		int fds[WIRE_FDS_MAX];
		unsigned nfds;
		wire_reader_take(&r, &body, &blen, fds, &nfds);
		Gort__V1__Reply *reply;
		const char *why = NULL;
		if (wire_reply_unpack(body, blen, &reply, &why) < 0) {
			fprintf(stderr, "the daemon queued a reply its clients cannot decode: %s\n", why);
			abort();
		}
		gort__v1__reply__free_unpacked(reply, NULL);
		free(body);
	}
	wire_reader_deinit(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct peer p = { .pid = 4242, .uid = (data[0] & 1) ? 0 : 65534, .gid = 65534 };
	p.control = auth_may_control(&p);
	size_t chunk = data[0] >> 1;
	data++;
	size--;
	struct conn *c = server_conn_new_detached(&p);
	if (!c)
		return 0;
	size_t off = 0;
	bool alive = true;
	while (alive && off < size) {
		size_t n = chunk ? chunk : size - off;
		if (n > size - off)
			n = size - off;
		alive = server_conn_input(c, data + off, n);
		off += n;
	}
	if (alive)
		server_conn_input(c, NULL, 0); /* the client hangs up */
	check_output(c);
	server_conn_free(c);
	return 0;
}
