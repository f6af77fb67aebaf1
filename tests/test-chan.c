/* tests/test-chan.c: channels (runtime/chan.c): one test per semantic rule, stress with checksums, close races, panics, task ownership. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "chan.h"
#include "testlib.h"

/* ---- unbuffered: hand-off ---- */

static gort_chan *gch;
static struct g *_Atomic gslot;
static _Atomic long gcount;
static gort_wg gwg;

/* Starts fn(arg), which stores its G in gslot, counted on gwg, and returns
 * that G once it has parked for reason. */
static struct g *go_parked(gort_fn fn, void *arg, enum waitreason reason)
{
	atomic_store(&gslot, NULL);
	gort_wg_add(&gwg, 1);
	gort_go(fn, arg);
	return wait_parked(&gslot, reason);
}

static void seq_sender(void *arg)
{
	long n = (long)arg;
	atomic_store(&gslot, getg());
	for (long i = 1; i <= n; i++)
		gort_chan_send(gch, &i);
	atomic_fetch_add(&gcount, 1);
	gort_wg_done(&gwg);
}

static int unbuffered_order_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	long n = scaled(100000);
	gch = gort_chan_make(sizeof(long), 0);
	ck_assert_ptr_nonnull(gch);
	ck_assert_int_eq(gort_chan_cap(gch), 0);
	gort_wg_add(&gwg, 1);
	gort_go(seq_sender, (void *)n);
	for (long i = 1; i <= n; i++) {
		long v = -1;
		/* plain ifs in hot loops: every ck_assert is a write to check's pipe */
		if (!gort_chan_recv(gch, &v) || v != i || gort_chan_len(gch) != 0)
			ck_abort_msg("value %ld: got %ld", i, v);
	}
	gort_wg_wait(&gwg);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_unbuffered_values_in_order)
{
	run_gort(unbuffered_order_main, 2, 0);
}
END_TEST

/* A send on an unbuffered channel completes only when a receiver takes it. */
static int unbuffered_blocks_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gch = gort_chan_make(sizeof(long), 0);
	atomic_store(&gcount, 0);
	struct g *gp = go_parked(seq_sender, (void *)1L, WAIT_CHAN_SEND);
	gort_sleep(20 * MS);
	ck_assert_int_eq(atomic_load(&gcount), 0); /* still blocked */
	ck_assert_int_eq(readgstatus(gp), G_WAITING);
	long v = 0;
	ck_assert(gort_chan_recv(gch, &v));
	ck_assert_int_eq(v, 1);
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&gcount), 1);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_unbuffered_send_blocks_until_received)
{
	run_gort(unbuffered_blocks_main, 2, 0);
}
END_TEST

/* A receive blocks until a send; the sender's element lands in the receiver's
 * variable directly. */
static long recv_target;

static void blocked_receiver(void *arg)
{
	(void)arg;
	atomic_store(&gslot, getg());
	ck_assert(gort_chan_recv(gch, &recv_target));
	atomic_fetch_add(&gcount, 1);
	gort_wg_done(&gwg);
}

static int recv_blocks_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gch = gort_chan_make(sizeof(long), 0);
	atomic_store(&gcount, 0);
	struct g *gp = go_parked(blocked_receiver, NULL, WAIT_CHAN_RECV);
	/* its sudog is queued and points at its variable */
	ck_assert_ptr_nonnull(gp->waiting);
	ck_assert_ptr_eq(gp->waiting->elem, &recv_target);
	gort_sleep(10 * MS);
	ck_assert_int_eq(atomic_load(&gcount), 0);
	long v = 4242;
	ck_assert(gort_chan_trysend(gch, &v)); /* a receiver waits: no blocking needed */
	gort_wg_wait(&gwg);
	ck_assert_int_eq(recv_target, 4242);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_recv_blocks_until_send_direct_copy)
{
	run_gort(recv_blocks_main, 2, 0);
}
END_TEST

/* A hand-off leaves the partner's sudog in the caller's G (lastpeer), which
 * goready prefetches when the caller is readied next. */
static int lastpeer_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gch = gort_chan_make(sizeof(long), 0);
	atomic_store(&gcount, 0);
	/* a sender's hint: the receiver it handed to */
	struct sudog *sg = go_parked(blocked_receiver, NULL, WAIT_CHAN_RECV)->waiting;
	ck_assert_ptr_nonnull(sg);
	long v = 7;
	gort_chan_send(gch, &v);
	ck_assert_ptr_eq(getg()->lastpeer, sg);
	gort_wg_wait(&gwg);
	/* a receiver's: the sender it took from */
	sg = go_parked(seq_sender, (void *)1L, WAIT_CHAN_SEND)->waiting;
	ck_assert_ptr_nonnull(sg);
	ck_assert(gort_chan_recv(gch, &v));
	ck_assert_int_eq(v, 1);
	ck_assert_ptr_eq(getg()->lastpeer, sg);
	gort_wg_wait(&gwg);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_handoff_leaves_lastpeer)
{
	run_gort(lastpeer_main, 2, 0);
}
END_TEST

/* ---- buffered: a ring ---- */

static int buffered_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { CAP = 7 };
	gort_chan *c = gort_chan_make(sizeof(int), CAP);
	ck_assert_int_eq(gort_chan_cap(c), CAP);
	int next_in = 0, next_out = 0;
	/* many laps around the ring with varying fill levels */
	for (int lap = 0; lap < 100; lap++) {
		int fill = 1 + lap % CAP;
		for (int i = 0; i < fill; i++) {
			ck_assert(gort_chan_trysend(c, &next_in));
			next_in++;
		}
		ck_assert_int_eq(gort_chan_len(c), (size_t)fill);
		for (int i = 0; i < fill; i++) {
			int v = -1;
			ck_assert(gort_chan_recv(c, &v));
			ck_assert_int_eq(v, next_out++);
		}
	}
	/* fill to capacity without blocking; one more would block */
	for (int i = 0; i < CAP; i++)
		gort_chan_send(c, &i);
	ck_assert_int_eq(gort_chan_len(c), CAP);
	int x = 99;
	ck_assert(!gort_chan_trysend(c, &x));
	int v;
	ck_assert_int_eq(gort_chan_tryrecv(c, &v), 1);
	ck_assert_int_eq(v, 0);
	ck_assert(gort_chan_trysend(c, &x));
	for (int i = 1; i < CAP; i++) {
		ck_assert_int_eq(gort_chan_tryrecv(c, &v), 1);
		ck_assert_int_eq(v, i);
	}
	ck_assert_int_eq(gort_chan_tryrecv(c, &v), 1);
	ck_assert_int_eq(v, 99);
	ck_assert_int_eq(gort_chan_tryrecv(c, &v), 0);
	ck_assert_int_eq(gort_chan_len(c), 0);
	gort_chan_free(c);
	return 0;
}

START_TEST(test_buffered_ring_fifo_and_capacity)
{
	run_gort(buffered_main, 2, 0);
}
END_TEST

/* A sender blocked on a full ring is served when a receiver makes room, and
 * its value keeps its place in the FIFO order. */
static void fill_sender(void *arg)
{
	(void)arg;
	atomic_store(&gslot, getg());
	int v = 100;
	gort_chan_send(gch, &v);
	gort_wg_done(&gwg);
}

static int full_ring_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gch = gort_chan_make(sizeof(int), 3);
	for (int i = 0; i < 3; i++)
		gort_chan_send(gch, &i);
	go_parked(fill_sender, NULL, WAIT_CHAN_SEND);
	int v;
	for (int i = 0; i < 3; i++) {
		ck_assert(gort_chan_recv(gch, &v));
		ck_assert_int_eq(v, i);
	}
	ck_assert(gort_chan_recv(gch, &v));
	ck_assert_int_eq(v, 100);
	gort_wg_wait(&gwg);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_buffered_full_blocks_sender_keeps_order)
{
	run_gort(full_ring_main, 2, 0);
}
END_TEST

/* Elements of odd and large sizes, and zero-size elements. */
struct big {
	unsigned char b[173];
};

static void big_sender(void *arg)
{
	gort_chan *c = arg;
	for (int i = 0; i < 200; i++) {
		struct big e;
		memset(e.b, i, sizeof e.b);
		e.b[0] = (unsigned char)(i * 7);
		gort_chan_send(c, &e);
	}
	gort_chan_close(c);
}

static int sizes_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	size_t caps[] = { 0, 1, 5 };
	for (size_t k = 0; k < ARRAY_SIZE(caps); k++) {
		gort_chan *c = gort_chan_make(sizeof(struct big), caps[k]);
		gort_go(big_sender, c);
		struct big e;
		int i = 0;
		while (gort_chan_recv(c, &e)) {
			if (e.b[0] != (unsigned char)(i * 7))
				ck_abort_msg("element %d: byte 0 is %d", i, e.b[0]);
			for (size_t j = 1; j < sizeof e.b; j++)
				if (e.b[j] != (unsigned char)i)
					ck_abort_msg("element %d: byte %zu is %d", i, j, e.b[j]);
			i++;
		}
		ck_assert_int_eq(i, 200);
		for (size_t j = 0; j < sizeof e.b; j++)
			ck_assert_int_eq(e.b[j], 0); /* closed: zeroed */
		gort_chan_free(c);
	}
	/* zero-size elements: a pure signal; NULL element pointers are fine */
	gort_chan *z = gort_chan_make(0, 2);
	ck_assert(gort_chan_trysend(z, NULL));
	ck_assert(gort_chan_trysend(z, NULL));
	ck_assert(!gort_chan_trysend(z, NULL));
	ck_assert_int_eq(gort_chan_len(z), 2);
	ck_assert(gort_chan_recv(z, NULL));
	ck_assert_int_eq(gort_chan_tryrecv(z, NULL), 1);
	ck_assert_int_eq(gort_chan_tryrecv(z, NULL), 0);
	gort_chan_free(z);
	/* receiving into NULL discards */
	gort_chan *d = gort_chan_make(sizeof(long), 1);
	long v = 5;
	gort_chan_send(d, &v);
	ck_assert(gort_chan_recv(d, NULL));
	ck_assert_int_eq(gort_chan_len(d), 0);
	gort_chan_free(d);
	return 0;
}

START_TEST(test_element_sizes)
{
	run_gort(sizes_main, 2, 0);
}
END_TEST

/* ---- close ---- */

static _Atomic long closed_ok, closed_seen;

static void close_waiter(void *arg)
{
	(void)arg;
	long v = -1;
	bool ok = gort_chan_recv(gch, &v);
	if (!ok && v == 0)
		atomic_fetch_add(&closed_seen, 1);
	if (ok)
		atomic_fetch_add(&closed_ok, 1);
	gort_wg_done(&gwg);
}

static int close_wakes_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { N = 200 };
	gch = gort_chan_make(sizeof(long), 0);
	gort_wg_add(&gwg, N);
	for (int i = 0; i < N; i++)
		gort_go(close_waiter, NULL);
	/* all parked: the receive queue holds N sudogs */
	int64_t deadline = gort_now() + 10 * SEC;
	for (;;) {
		struct hchan *c = (struct hchan *)gch;
		chanlock(c);
		int n = 0;
		for (struct sudog *sg = c->recvq.first; sg; sg = sg->next)
			n++;
		chanunlock(c);
		if (n == N)
			break;
		ck_assert(gort_now() < deadline);
		gort_sleep(MS);
	}
	gort_chan_close(gch);
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&closed_seen), N);
	ck_assert_int_eq(atomic_load(&closed_ok), 0);
	/* a closed channel: receives return at once, zeroed and false, forever */
	long v = 77;
	ck_assert(!gort_chan_recv(gch, &v));
	ck_assert_int_eq(v, 0);
	v = 77;
	ck_assert_int_eq(gort_chan_tryrecv(gch, &v), -1);
	ck_assert_int_eq(v, 0);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_close_wakes_all_receivers)
{
	run_gort(close_wakes_main, 2, 0);
}
END_TEST

static int close_drains_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *c = gort_chan_make(sizeof(int), 4);
	for (int i = 1; i <= 3; i++)
		gort_chan_send(c, &i);
	gort_chan_close(c);
	ck_assert_int_eq(gort_chan_len(c), 3);
	int v;
	for (int i = 1; i <= 3; i++) {
		ck_assert(gort_chan_recv(c, &v));
		ck_assert_int_eq(v, i);
	}
	v = 9;
	ck_assert(!gort_chan_recv(c, &v));
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(gort_chan_tryrecv(c, &v), -1);
	gort_chan_free(c);
	return 0;
}

START_TEST(test_close_buffered_drains_first)
{
	run_gort(close_drains_main, 2, 0);
}
END_TEST

/* ---- non-blocking operations ---- */

static void late_receiver(void *arg)
{
	(void)arg;
	long v;
	atomic_store(&gslot, getg());
	gort_chan_recv(gch, &v);
	atomic_store(&gcount, v);
	gort_wg_done(&gwg);
}

static int try_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gch = gort_chan_make(sizeof(long), 0);
	long v = 3;
	/* unbuffered, nobody waiting: both would block */
	ck_assert(!gort_chan_trysend(gch, &v));
	ck_assert_int_eq(gort_chan_tryrecv(gch, &v), 0);
	ck_assert_int_eq(v, 3);
	/* with a parked receiver, trysend hands over */
	go_parked(late_receiver, NULL, WAIT_CHAN_RECV);
	ck_assert(gort_chan_trysend(gch, &v));
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&gcount), 3);
	/* with a parked sender, tryrecv takes its value */
	atomic_store(&gslot, NULL);
	gort_wg_add(&gwg, 1);
	gort_go(seq_sender, (void *)1L);
	wait_parked(&gslot, WAIT_CHAN_SEND);
	v = 0;
	ck_assert_int_eq(gort_chan_tryrecv(gch, &v), 1);
	ck_assert_int_eq(v, 1);
	gort_wg_wait(&gwg);
	gort_chan_close(gch);
	ck_assert_int_eq(gort_chan_tryrecv(gch, &v), -1);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_trysend_tryrecv)
{
	run_gort(try_main, 2, 0);
}
END_TEST

/* ---- nil channel ---- */

static struct g *_Atomic nil_send_g, *_Atomic nil_recv_g;
static _Atomic int nil_passed;

static void nil_sender(void *arg)
{
	(void)arg;
	atomic_store(&nil_send_g, getg());
	long v = 1;
	gort_chan_send(NULL, &v);
	atomic_store(&nil_passed, 1);
}

static void nil_receiver(void *arg)
{
	(void)arg;
	atomic_store(&nil_recv_g, getg());
	long v;
	gort_chan_recv(NULL, &v);
	atomic_store(&nil_passed, 1);
}

static int nil_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	long v = 1;
	ck_assert(!gort_chan_trysend(NULL, &v));
	ck_assert_int_eq(gort_chan_tryrecv(NULL, &v), 0);
	ck_assert_int_eq(gort_chan_len(NULL), 0);
	ck_assert_int_eq(gort_chan_cap(NULL), 0);
	gort_chan_free(NULL); /* no-op */
	gort_go(nil_sender, NULL);
	gort_go(nil_receiver, NULL);
	wait_parked(&nil_send_g, WAIT_CHAN_SEND_NIL);
	wait_parked(&nil_recv_g, WAIT_CHAN_RECV_NIL);
	gort_sleep(20 * MS);
	ck_assert_int_eq(atomic_load(&nil_passed), 0);
	return 0; /* the task ends with both still blocked forever */
}

START_TEST(test_nil_channel_blocks_forever)
{
	run_gort(nil_main, 2, 0);
}
END_TEST

/* ---- FIFO waiters ---- */

static struct g *_Atomic fifo_g[16];
static _Atomic long fifo_got[16];

static void fifo_receiver(void *arg)
{
	long i = (long)arg;
	atomic_store(&fifo_g[i], getg());
	long v;
	ck_assert(gort_chan_recv(gch, &v));
	atomic_store(&fifo_got[i], v);
	gort_wg_done(&gwg);
}

static void fifo_sender(void *arg)
{
	long i = (long)arg;
	atomic_store(&fifo_g[i], getg());
	gort_chan_send(gch, &i);
	gort_wg_done(&gwg);
}

static int fifo_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { N = 16 };
	gch = gort_chan_make(sizeof(long), 0);
	/* receivers park one after another: values go to them in that order */
	gort_wg_add(&gwg, N);
	for (long i = 0; i < N; i++) {
		atomic_store(&fifo_g[i], NULL);
		gort_go(fifo_receiver, (void *)i);
		wait_parked(&fifo_g[i], WAIT_CHAN_RECV);
	}
	for (long i = 0; i < N; i++)
		gort_chan_send(gch, &i);
	gort_wg_wait(&gwg);
	for (long i = 0; i < N; i++)
		ck_assert_int_eq(atomic_load(&fifo_got[i]), i);
	/* senders likewise: received in the order they parked */
	gort_wg_add(&gwg, N);
	for (long i = 0; i < N; i++) {
		atomic_store(&fifo_g[i], NULL);
		gort_go(fifo_sender, (void *)i);
		wait_parked(&fifo_g[i], WAIT_CHAN_SEND);
	}
	for (long i = 0; i < N; i++) {
		long v;
		ck_assert(gort_chan_recv(gch, &v));
		ck_assert_int_eq(v, i);
	}
	gort_wg_wait(&gwg);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_waiters_fifo)
{
	run_gort(fifo_main, 2, 0);
}
END_TEST

/* ---- stress: producers and consumers, nothing lost or duplicated ---- */

enum { PRODUCERS = 4, CONSUMERS = 4 };
static long stress_per;
static _Atomic uint8_t *stress_seen;
static _Atomic long stress_dup, stress_count;
static _Atomic uint64_t stress_sum;
static gort_wg prod_wg, cons_wg;

static void producer(void *arg)
{
	long id = (long)arg;
	for (long k = 0; k < stress_per; k++) {
		long v = id * stress_per + k;
		/* every third value: a few non-blocking attempts first (only a few:
		 * tries on both sides of an unbuffered channel never meet) */
		bool sent = false;
		for (int t = 0; k % 3 == 0 && t < 3 && !sent; t++)
			if (!(sent = gort_chan_trysend(gch, &v)))
				gort_yield();
		if (!sent)
			gort_chan_send(gch, &v);
	}
	gort_wg_done(&prod_wg);
}

static void consumer(void *arg)
{
	(void)arg;
	long v;
	uint64_t sum = 0;
	long n = 0;
	for (;;) {
		int r = 0;
		for (int t = 0; n % 5 == 4 && t < 3 && r == 0; t++)
			if ((r = gort_chan_tryrecv(gch, &v)) == 0)
				gort_yield();
		bool ok = r == 0 ? gort_chan_recv(gch, &v) : r == 1;
		if (!ok)
			break;
		if (atomic_exchange(&stress_seen[v], 1))
			atomic_fetch_add(&stress_dup, 1);
		sum += (uint64_t)v;
		n++;
	}
	atomic_fetch_add(&stress_sum, sum);
	atomic_fetch_add(&stress_count, n);
	gort_wg_done(&cons_wg);
}

static size_t stress_cap;

static int stress_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	long total = PRODUCERS * stress_per;
	stress_seen = calloc((size_t)total, 1);
	atomic_store(&stress_dup, 0);
	atomic_store(&stress_count, 0);
	atomic_store(&stress_sum, 0);
	gch = gort_chan_make(sizeof(long), stress_cap);
	gort_wg_add(&prod_wg, PRODUCERS);
	gort_wg_add(&cons_wg, CONSUMERS);
	for (long i = 0; i < CONSUMERS; i++)
		gort_go(consumer, NULL);
	for (long i = 0; i < PRODUCERS; i++)
		gort_go(producer, (void *)i);
	gort_wg_wait(&prod_wg);
	gort_chan_close(gch);
	gort_wg_wait(&cons_wg);
	ck_assert_int_eq(atomic_load(&stress_dup), 0);
	ck_assert_int_eq(atomic_load(&stress_count), total);
	ck_assert_uint_eq(atomic_load(&stress_sum), (uint64_t)total * (uint64_t)(total - 1) / 2);
	for (long i = 0; i < total; i++)
		if (!atomic_load(&stress_seen[i]))
			ck_abort_msg("value %ld lost", i);
	free((void *)stress_seen);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_stress_unbuffered)
{
	stress_per = scaled(50000);
	stress_cap = 0;
	run_gort(stress_main, 2, 0);
}
END_TEST

START_TEST(test_stress_buffered)
{
	stress_per = scaled(100000);
	stress_cap = 16;
	run_gort(stress_main, 2, 0);
}
END_TEST

START_TEST(test_stress_buffered_one_p)
{
	stress_per = scaled(50000);
	stress_cap = 1;
	run_gort(stress_main, 1, 0);
}
END_TEST

/* ---- close racing with receives ---- */

static _Atomic long race_recvd, race_sent;

static void race_receiver(void *arg)
{
	gort_chan *c = arg;
	long v;
	while (gort_chan_recv(c, &v))
		atomic_fetch_add(&race_recvd, 1);
	ck_assert_int_eq(v, 0);
	gort_wg_done(&gwg);
}

static void race_closer(void *arg)
{
	gort_chan *c = arg;
	/* sends a few values (counting them), then closes at a random moment */
	long n = trand(50);
	for (long i = 0; i < n; i++) {
		long v = i + 1;
		gort_chan_send(c, &v);
		atomic_fetch_add(&race_sent, 1);
	}
	for (uint32_t i = trand(3); i > 0; i--)
		gort_yield();
	gort_chan_close(c);
	gort_wg_done(&gwg);
}

static int close_race_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	long rounds = scaled(2000);
	for (long r = 0; r < rounds; r++) {
		gort_chan *c = gort_chan_make(sizeof(long), r % 3 == 0 ? 4 : 0);
		gort_wg_add(&gwg, 4);
		for (int i = 0; i < 3; i++)
			gort_go(race_receiver, c);
		gort_go(race_closer, c);
		gort_wg_wait(&gwg);
		gort_chan_free(c);
	}
	ck_assert_int_eq(atomic_load(&race_recvd), atomic_load(&race_sent));
	return 0;
}

START_TEST(test_close_races_with_recv)
{
	run_gort(close_race_main, 2, 0);
}
END_TEST

/* ---- panics ---- */

static int send_closed_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *c = gort_chan_make(sizeof(int), 1);
	gort_chan_close(c);
	int v = 1;
	gort_chan_send(c, &v);
	return 0;
}

START_TEST(test_panic_send_on_closed)
{
	expect_panic(send_closed_main, "send on closed channel");
}
END_TEST

static int trysend_closed_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *c = gort_chan_make(sizeof(int), 0);
	gort_chan_close(c);
	int v = 1;
	gort_chan_trysend(c, &v);
	return 0;
}

START_TEST(test_panic_trysend_on_closed)
{
	expect_panic(trysend_closed_main, "send on closed channel");
}
END_TEST

static int close_closed_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *c = gort_chan_make(sizeof(int), 0);
	gort_chan_close(c);
	gort_chan_close(c);
	return 0;
}

START_TEST(test_panic_close_of_closed)
{
	expect_panic(close_closed_main, "close of closed channel");
}
END_TEST

static int close_nil_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan_close(NULL);
	return 0;
}

START_TEST(test_panic_close_of_nil)
{
	expect_panic(close_nil_main, "close of nil channel");
}
END_TEST

static void doomed_sender(void *arg)
{
	(void)arg;
	atomic_store(&gslot, getg());
	long v = 1;
	gort_chan_send(gch, &v);
}

static int blocked_sender_close_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	atomic_store(&gslot, NULL); /* not a G of an earlier test (one process under valgrind) */
	gch = gort_chan_make(sizeof(long), 0);
	gort_go(doomed_sender, NULL);
	wait_parked(&gslot, WAIT_CHAN_SEND);
	gort_chan_close(gch);
	gort_sleep(10 * SEC); /* the sender's panic ends the task first */
	return 0;
}

START_TEST(test_panic_blocked_sender_on_close)
{
	expect_panic(blocked_sender_close_main, "send on closed channel");
}
END_TEST

/* senders racing with close: one of them panics, the task ends with 2 */
static void racing_sender(void *arg)
{
	long v = 1;
	for (;;)
		gort_chan_send(arg, &v);
}

static void draining_receiver(void *arg)
{
	long v;
	while (gort_chan_recv(arg, &v))
		;
}

static int send_close_race_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *c = gort_chan_make(sizeof(long), 2);
	for (int i = 0; i < 4; i++)
		gort_go(racing_sender, c);
	gort_go(draining_receiver, c);
	gort_sleep(5 * MS);
	gort_chan_close(c);
	gort_sleep(10 * SEC);
	return 0;
}

START_TEST(test_panic_send_racing_close)
{
	expect_panic(send_close_race_main, "send on closed channel");
}
END_TEST

static int free_busy_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	atomic_store(&gslot, NULL); /* not a G of an earlier test (one process under valgrind) */
	gch = gort_chan_make(sizeof(long), 0);
	gort_go(doomed_sender, NULL);
	wait_parked(&gslot, WAIT_CHAN_SEND);
	gort_chan_free(gch);
	return 0;
}

START_TEST(test_panic_free_with_waiters)
{
	expect_panic(free_busy_main, "free of a channel with goroutines blocked on it");
}
END_TEST

static int send_null_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *c = gort_chan_make(sizeof(long), 1);
	gort_chan_send(c, NULL);
	return 0;
}

START_TEST(test_panic_send_null_element)
{
	expect_panic(send_null_main, "chan send: NULL element pointer");
}
END_TEST

/* Blocking outside a goroutine has nobody to park: the process aborts with a
 * message (no task to end). */
START_TEST(test_blocking_outside_goroutine_aborts)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		gort_chan *c = gort_chan_make(sizeof(long), 1);
		long v = 1;
		gort_chan_send(c, &v); /* fits: fine from any thread */
		gort_chan_recv(c, &v);
		gort_chan_recv(c, &v); /* would block */
		_exit(0);
	}
	char out[4096];
	int status = child_stderr(pfd, pid, out, sizeof out);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
	ck_assert_msg(strstr(out, "outside a goroutine"), "stderr: %s", out);
}
END_TEST

/* ---- make: bad sizes ---- */

START_TEST(test_make_rejects_overflow)
{
	errno = 0;
	ck_assert_ptr_null(gort_chan_make(SIZE_MAX / 2, 4));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(gort_chan_make(8, SIZE_MAX / 4));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0; /* an element is at most UINT32_MAX bytes (Go's: 64 KiB) */
	ck_assert_ptr_null(gort_chan_make((size_t)UINT32_MAX + 1, 0));
	ck_assert_int_eq(errno, EINVAL);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) /* they abort on huge mallocs */
	errno = 0;
	ck_assert_ptr_null(gort_chan_make(1 << 20, (size_t)1 << 40)); /* fits size_t, not memory */
	ck_assert_int_eq(errno, ENOMEM);
#endif
	/* outside any task: made and freed by hand */
	gort_chan *c = gort_chan_make(4, 4);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(((struct hchan *)c)->task);
	gort_chan_free(c);
}
END_TEST

/* ---- ownership: a task frees the channels it never freed ---- */

static long count_objs(struct task *t)
{
	long n = 0;
	lock(&t->lock);
	for (struct task_obj *o = t->objs; o; o = o->next)
		n++;
	unlock(&t->lock);
	return n;
}

static int own_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	struct task *t = getg()->task;
	long base = count_objs(t);
	gort_chan *a = gort_chan_make(8, 0), *b = gort_chan_make(8, 4), *c = gort_chan_make(8, 1);
	ck_assert_ptr_eq(((struct hchan *)a)->task, t);
	ck_assert_int_eq(count_objs(t), base + 3);
	gort_chan_free(b);
	ck_assert_int_eq(count_objs(t), base + 2);
	gort_chan_free(a);
	gort_chan_free(c);
	ck_assert_int_eq(count_objs(t), base);
	/* 2000 channels of 8 KiB left behind: gort_run frees them */
	for (int i = 0; i < 2000; i++)
		ck_assert_ptr_nonnull(gort_chan_make(8, 1024));
	ck_assert_int_eq(count_objs(t), base + 2000);
	return 0;
}

START_TEST(test_unfreed_channels_freed_with_task)
{
	run_gort(own_main, 2, 0); /* warm the runtime's own allocations */
	struct mallinfo2 before = mallinfo2();
	run_gort(own_main, 2, 0);
	struct mallinfo2 after = mallinfo2();
	long grown = (long)(after.uordblks + after.hblkhd) - (long)(before.uordblks + before.hblkhd);
	ck_assert_msg(grown < 4 * 1024 * 1024, "%ld bytes still allocated after the task ended", grown);
}
END_TEST

static int freed_objs;

static void count_free(struct task_obj *o)
{
	(void)o;
	freed_objs++;
}

START_TEST(test_task_own_disown)
{
	struct task t = { 0 };
	struct task_obj o[4];
	for (int i = 0; i < 4; i++)
		task_own(&t, &o[i], count_free);
	task_disown(&t, &o[2]);
	task_disown(&t, &o[3]); /* the head */
	task_disown(&t, &o[0]); /* the tail */
	ck_assert_ptr_eq(t.objs, &o[1]);
	ck_assert_ptr_null(o[1].next);
	ck_assert_ptr_null(o[1].prev);
	task_free_objs(&t);
	ck_assert_int_eq(freed_objs, 1);
	ck_assert_ptr_null(t.objs);
	task_own(NULL, &o[0], count_free); /* nobody's: no-ops */
	task_disown(NULL, &o[0]);
}
END_TEST

/* chanlock's bias (chan.c's essay): a run of takes by one P biases the lock to
 * it; a take from the other P revokes the bias while the first keeps taking
 * it; then a run by one P biases it again. Throughout, a counter updated
 * non-atomically under the lock (with a window between its load and store)
 * must not lose an increment, and a thread without a P takes it too. */
static struct hchan *bias_c;
static long bias_count;
static _Atomic int bias_phase, bias_p2;

static void bias_incr(int n)
{
	for (int i = 0; i < n; i++) {
		chanlock(bias_c);
		long v = bias_count;
		procyield(i % 4 * 20);
		bias_count = v + 1;
		chanunlock(bias_c);
	}
}

static void bias_other(void *arg)
{
	(void)arg;
	atomic_store(&bias_p2, getg()->m->p->id + 1);
	while (atomic_load(&bias_phase) == 0)
		procyield(10); /* busy: the other P runs the main goroutine */
	bias_incr((int)scaled(20000));
	atomic_store(&bias_phase, 2);
}

static void *bias_thread(void *arg)
{
	(void)arg;
	bias_incr(1000); /* no P: always the mutex, revoking whatever bias */
	return NULL;
}

static int bias_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	bias_c = (struct hchan *)gort_chan_make(sizeof(int), 0);
	int32_t me = getg()->m->p->id + 1;
	bias_incr(200);
	if (membarrier_ok())
		ck_assert_int_eq(atomic_load(&bias_c->bias), me);
	else
		ck_assert_int_eq(atomic_load(&bias_c->bias), 0);

	/* the other goroutine on the other P (it spins, so it is not ours) */
	gort_go(bias_other, NULL);
	int64_t deadline = nanotime() + 60LL * 1000 * 1000 * 1000;
	while (!atomic_load(&bias_p2) && nanotime() < deadline)
		procyield(10);
	/* usually on the other P (stolen while we spin); the thread below
	 * revokes in any case */
	ck_assert_int_ne(atomic_load(&bias_p2), 0);
	atomic_store(&bias_phase, 1);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, bias_thread, NULL), 0);
	long mine = 0;
	while (atomic_load(&bias_phase) != 2) {
		bias_incr(50);
		mine += 50;
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(bias_count, 200 + scaled(20000) + 1000 + mine);

	/* both Ps and a thread took it: not biased to anyone now, until a run */
	me = getg()->m->p->id + 1;
	bias_incr(200);
	if (membarrier_ok())
		ck_assert_int_eq(atomic_load(&bias_c->bias), me);
	ck_assert_int_eq(bias_count, 200 + scaled(20000) + 1000 + mine + 200);
	gort_chan_free((gort_chan *)bias_c);
	return 0;
}

START_TEST(test_chanlock_bias_and_revocation)
{
	run_gort(bias_main, 2, 0);
}
END_TEST

/* A revocation when membarrier has started failing (a seccomp filter
 * installed after start, the case lock_futex.c's sleepers already survive):
 * membarrier_all's contract is that the rare side then acts as if the
 * common side's store were not visible; a revoker must not wait forever for
 * a barrier that never comes. Runs in a child (the filter is for good). */
static struct hchan *nomb_c;
static _Atomic int nomb_done;

static void *nomb_thread(void *arg)
{
	(void)arg;
	gort_chan_close((gort_chan *)nomb_c); /* no P: the mutex, revoking the bias */
	atomic_store(&nomb_done, 1);
	return NULL;
}

static int nomb_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nomb_c = (struct hchan *)gort_chan_make(sizeof(int), 1);
	for (int i = 0; i < 200; i++) {
		int v = i;
		gort_chan_send((gort_chan *)nomb_c, &v);
		gort_chan_recv((gort_chan *)nomb_c, &v);
	}
	if (!membarrier_ok() || atomic_load(&nomb_c->bias) == 0)
		return 0; /* never biased: nothing to revoke */
	struct sock_filter filt[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE(filt), .filter = filt };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return 0; /* no seccomp here: nothing to test */
	ck_assert_int_eq(membarrier_all(), -EPERM);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, nomb_thread, NULL), 0);
	int64_t deadline = nanotime() + 10LL * 1000 * 1000 * 1000;
	while (!atomic_load(&nomb_done) && nanotime() < deadline)
		gort_sleep(1000 * 1000);
	if (!atomic_load(&nomb_done)) {
		fprintf(stderr, "revocation hung with membarrier failing\n");
		_exit(3);
	}
	pthread_join(th, NULL);
	int v = -1;
	ck_assert(!gort_chan_recv((gort_chan *)nomb_c, &v));
	gort_chan_free((gort_chan *)nomb_c);
	return 0;
}

START_TEST(test_chanlock_revocation_without_membarrier)
{
	char out[4096];
	int status = run_child(nomb_main, 2, out, sizeof out);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x, stderr: %s", status, out);
}
END_TEST

static Suite *chan_suite(void)
{
	Suite *s = suite_create("chan");
	TCase *tc = tcase_create("semantics");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_unbuffered_values_in_order);
	tcase_add_test(tc, test_unbuffered_send_blocks_until_received);
	tcase_add_test(tc, test_recv_blocks_until_send_direct_copy);
	tcase_add_test(tc, test_handoff_leaves_lastpeer);
	tcase_add_test(tc, test_buffered_ring_fifo_and_capacity);
	tcase_add_test(tc, test_buffered_full_blocks_sender_keeps_order);
	tcase_add_test(tc, test_element_sizes);
	tcase_add_test(tc, test_close_wakes_all_receivers);
	tcase_add_test(tc, test_close_buffered_drains_first);
	tcase_add_test(tc, test_trysend_tryrecv);
	tcase_add_test(tc, test_nil_channel_blocks_forever);
	tcase_add_test(tc, test_waiters_fifo);
	tcase_add_test(tc, test_make_rejects_overflow);
	tcase_add_test(tc, test_unfreed_channels_freed_with_task);
	tcase_add_test(tc, test_task_own_disown);
	tcase_add_test(tc, test_chanlock_bias_and_revocation);
	tcase_add_test(tc, test_chanlock_revocation_without_membarrier);
	suite_add_tcase(s, tc);

	tc = tcase_create("stress");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_stress_unbuffered);
	tcase_add_test(tc, test_stress_buffered);
	tcase_add_test(tc, test_stress_buffered_one_p);
	tcase_add_test(tc, test_close_races_with_recv);
	suite_add_tcase(s, tc);

	tc = tcase_create("panics");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_panic_send_on_closed);
	tcase_add_test(tc, test_panic_trysend_on_closed);
	tcase_add_test(tc, test_panic_close_of_closed);
	tcase_add_test(tc, test_panic_close_of_nil);
	tcase_add_test(tc, test_panic_blocked_sender_on_close);
	tcase_add_test(tc, test_panic_send_racing_close);
	tcase_add_test(tc, test_panic_free_with_waiters);
	tcase_add_test(tc, test_panic_send_null_element);
	tcase_add_test(tc, test_blocking_outside_goroutine_aborts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(chan_suite());
}
