/* tests/test-preempt.c: preemption (runtime/preempt.c, the arch/ trampolines): loops without calls give way, every register survives, unsafe places are never interrupted. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <valgrind/memcheck.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "runtime.h"
#include "sysmon.h"
#include "testlib.h"

/*
 * The goroutine code these tests preempt lives in its own section, registered
 * as program code: in a dynamically linked test the whole executable is program
 * code anyway, but a statically linked one (the aarch64 run under qemu) carries
 * libc inside its text, and the runtime registers nothing of it.
 */
#define PREEMPTIBLE __attribute__((section("gort_test_text"), noinline))
extern const char __start_gort_test_text[], __stop_gort_test_text[];

static void register_test_code(void)
{
	assert_ok(preempt_code_add((uintptr_t)__start_gort_test_text, (uintptr_t)__stop_gort_test_text));
}

static bool in_test_code(uintptr_t pc)
{
	return pc >= (uintptr_t)__start_gort_test_text && pc < (uintptr_t)__stop_gort_test_text;
}

/* In this program's own object (its code, its PLT stubs), not in libc or any
 * other shared object; statically linked (no dladdr there): in the test code. */
static bool in_this_program(uintptr_t pc)
{
	Dl_info self, at;
	if (!dladdr((void *)(uintptr_t)in_this_program, &self) || !self.dli_fbase)
		return in_test_code(pc);
	return dladdr((void *)pc, &at) && at.dli_fbase == self.dli_fbase;
}

static const char *pc_object(uintptr_t pc)
{
	Dl_info at;
	return dladdr((void *)pc, &at) && at.dli_fname ? at.dli_fname : "?";
}

/* Workload sizes: scaled(), and smaller still under valgrind (run-tests.sh sets
 * GORT_VALGRIND), which runs one thread at a time, fifty times slower. */
static long heavy(long n)
{
	n = scaled(n);
	if (getenv("GORT_VALGRIND"))
		n /= 20;
	return n > 0 ? n : 1;
}

static struct sysmon_stats stats(void)
{
	struct sysmon_stats st;
	assert_ok(sysmon_stats_read(&st));
	return st;
}

static gort_wg wg;
static _Atomic int stop;
static _Atomic long counter;

/* A loop with no call in it: only the signal can take the P back. */
PREEMPTIBLE static void spin_until_stop(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		atomic_store_explicit(&counter, atomic_load_explicit(&counter, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	gort_wg_done(&wg);
}

/* ---- a spinning goroutine does not keep others from running (one P) ---- */

static void stopper(void *arg)
{
	(void)arg;
	/* with one P we run only once the spinner has been preempted */
	while (atomic_load(&counter) == 0)
		gort_yield();
	for (int i = 0; i < 5; i++)
		gort_sleep(1000 * 1000);
	atomic_store(&stop, 1);
	gort_wg_done(&wg);
}

static int spinner_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	atomic_store(&stop, 0);
	atomic_store(&counter, 0);
	struct sysmon_stats before = stats();
	gort_wg_add(&wg, 2);
	ck_assert_int_gt(gort_go(spin_until_stop, NULL), 0);
	ck_assert_int_gt(gort_go(stopper, NULL), 0);
	gort_wg_wait(&wg);
	struct sysmon_stats after = stats();
	ck_assert_uint_gt(after.preempt_requested, before.preempt_requested);
	ck_assert_uint_gt(after.preempt_async, before.preempt_async);
	return 0;
}

START_TEST(test_spinning_goroutine_does_not_block_one_p)
{
	run_gort(spinner_main, 1, 0);
}
END_TEST

/* ---- FP and vector state is bit-exact under continuous preemption ---- */

typedef double v2df __attribute__((vector_size(16)));

struct fpresult {
	double d;
	long double ld;
	float f;
	uint64_t h;
	v2df v[4];
	double avx[16];
	double avx512[16];
	uint64_t avx512mask;
};

/* Many live values of every kind kept in registers across a long loop without
 * calls: doubles, x87 long doubles, floats, integers whose branches depend on
 * flags, and SSE vectors; seeded so that two goroutines compute different things. */
PREEMPTIBLE static void fp_compute(long iters, double seed, struct fpresult *out)
{
	double d = seed;
	long double ld = seed;
	float f = (float)seed;
	uint64_t h = (uint64_t)(seed * 1e6) | 1;
	v2df a = { seed, 1.5 }, b = { 0.25, seed / 3 }, c = { 1.0 / seed, 2.0 }, e = { 0.5, 0.75 };
	const v2df ka = { 1.0000001, 0.9999999 }, kb = { 1e-9, -1e-9 };
	for (long i = 0; i < iters; i++) {
		d = d * 1.0000001 + 1e-9 * (double)(i & 7);
		ld = ld * 1.0000000001L - 1e-12L * (long double)(i & 3);
		f = f * 1.00001f + ((i & 1) ? 1e-6f : -1e-6f);
		h = h * 6364136223846793005ULL + 1442695040888963407ULL;
		if ((h >> 61) == 3)
			h ^= (uint64_t)i;
		else if ((int64_t)h < 0)
			h += 17;
		a = a * ka + kb;
		b = b * ka - kb;
		c = c * ka + a * kb;
		e = e * ka - b * kb;
	}
	out->d = d;
	out->ld = ld;
	out->f = f;
	out->h = h;
	out->v[0] = a;
	out->v[1] = b;
	out->v[2] = c;
	out->v[3] = e;
}

#if defined(__x86_64__)
/* 256-bit state (ymm upper halves), FMA */
__attribute__((target("avx2,fma"))) PREEMPTIBLE static void fp_compute_avx(long iters, double seed,
										struct fpresult *out)
{
	__m256d acc[4];
	for (int k = 0; k < 4; k++)
		acc[k] = _mm256_set_pd(seed + k, seed * 2 + k, seed / 3 + k, 1.0 + k);
	const __m256d m = _mm256_set1_pd(1.0000001), add = _mm256_set1_pd(1e-9);
	for (long i = 0; i < iters; i++)
		for (int k = 0; k < 4; k++)
			acc[k] = _mm256_fmadd_pd(acc[k], m, add);
	for (int k = 0; k < 4; k++)
		_mm256_storeu_pd(&out->avx[4 * k], acc[k]);
}

/* 512-bit state (zmm16-31 exist only here) and the opmask registers */
__attribute__((target("avx512f"))) PREEMPTIBLE static void fp_compute_avx512(long iters, double seed,
									     struct fpresult *out)
{
	__m512d x = _mm512_set1_pd(seed), y = _mm512_set_pd(1, 2, 3, 4, 5, 6, 7, seed);
	const __m512d m = _mm512_set1_pd(1.0000001), lim = _mm512_set1_pd(4.0);
	uint64_t masks = 0;
	for (long i = 0; i < iters; i++) {
		__mmask8 k = _mm512_cmp_pd_mask(y, lim, _CMP_LT_OQ);
		x = _mm512_mask_mul_pd(x, k, x, m);
		y = _mm512_mask_add_pd(y, (__mmask8)~k, y, m);
		y = _mm512_mul_pd(y, _mm512_set1_pd(0.9999999));
		masks = masks * 31 + k;
	}
	_mm512_storeu_pd(&out->avx512[0], x);
	_mm512_storeu_pd(&out->avx512[8], y);
	out->avx512mask = masks;
}
#endif

static long fp_iters;
#if defined(__x86_64__)
static bool have_avx, have_avx512;
#endif

static void fp_all(double seed, struct fpresult *out)
{
	memset(out, 0, sizeof *out);
	fp_compute(fp_iters, seed, out);
#if defined(__x86_64__)
	if (have_avx)
		fp_compute_avx(fp_iters, seed, out);
	if (have_avx512)
		fp_compute_avx512(fp_iters, seed, out);
#endif
}

static struct fpresult fp_want[4], fp_got[4];

static void fp_worker(void *arg)
{
	long i = (long)arg;
	fp_all(1.0 + (double)i * 0.37, &fp_got[i]);
	gort_wg_done(&wg);
}

static int fp_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	uint64_t seq;
	uintptr_t pcs[64];
	preempt_recent_pcs(0, pcs, 0, &seq);
	struct sysmon_stats before = stats();
	/* a 200 us time slice: preempted all the time; rounds until it was
	 * preempted often enough inside the computation (a slow machine, or
	 * valgrind, may need several), every round checked */
	int64_t old = sysmon_set_forcepreempt(200 * 1000);
	ck_assert_int_gt(old, 0);
	int inside = 0;
	uint64_t async = 0;
	int64_t deadline = gort_now() + 120LL * 1000 * 1000 * 1000;
	do {
		memset(fp_got, 0, sizeof fp_got);
		gort_wg_add(&wg, 4);
		for (long i = 0; i < 4; i++)
			ck_assert_int_gt(gort_go(fp_worker, (void *)i), 0);
		gort_wg_wait(&wg);
		/* Under valgrind, memcheck takes the trampoline's final ret for an
		 * ordinary return and marks the 128 bytes below the new sp -- the
		 * interrupted code's red zone -- undefined (its ABI hint): a leaf
		 * function's spills there (fp_compute_avx's, origin "stack
		 * allocation" in it) then look uninitialised though every bit was
		 * kept, and this comparison of the values would be reported. The
		 * values are still compared. No-op natively. */
		VALGRIND_MAKE_MEM_DEFINED(fp_got, sizeof fp_got);
		for (int i = 0; i < 4; i++)
			ck_assert_msg(memcmp(&fp_got[i], &fp_want[i], sizeof fp_want[i]) == 0,
				      "goroutine %d: results differ under preemption", i);
		/* and it really was preempted, inside the computation */
		int n = preempt_recent_pcs(seq, pcs, 64, &seq);
		for (int i = 0; i < n; i++)
			inside += in_test_code(pcs[i]);
		async = stats().preempt_async - before.preempt_async;
	} while ((async < 10 || inside < 10) && gort_now() < deadline);
	sysmon_set_forcepreempt(old);
	ck_assert_uint_ge(async, 10);
	ck_assert_int_ge(inside, 10);
	return 0;
}

START_TEST(test_fp_vector_state_bit_exact_under_preemption)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_avx = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	have_avx512 = __builtin_cpu_supports("avx512f");
#endif
	fp_iters = heavy(20 * 1000 * 1000);
	/* the same computation, on a thread that is never preempted */
	for (long i = 0; i < 4; i++)
		fp_all(1.0 + (double)i * 0.37, &fp_want[i]);
	run_gort(fp_main, 2, 0);
}
END_TEST

/* ---- never inside libc; at once back in program code (one P) ---- */

static _Atomic int phase, other_ran;
static unsigned char *bufa, *bufb;
static size_t buflen;
static long memcmp_rounds;

PREEMPTIBLE static void memcmp_spinner(void *arg)
{
	(void)arg;
	int r = 0;
	/* almost all the time is in libc (the offsets keep the calls from being
	 * hoisted out of the loop) */
	for (long i = 0; i < memcmp_rounds; i++)
		r |= memcmp(bufa + (i & 63), bufb + (i & 63), buflen - 64);
	ck_assert_int_eq(r, 0);
	atomic_store(&phase, 2);
	/* our own code now: the next signal stops us */
	while (!atomic_load_explicit(&other_ran, memory_order_relaxed))
		atomic_store_explicit(&counter, atomic_load_explicit(&counter, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	gort_wg_done(&wg);
}

static void memcmp_other(void *arg)
{
	(void)arg;
	while (atomic_load(&phase) != 2)
		gort_sleep(1000 * 1000);
	atomic_store(&other_ran, 1);
	gort_wg_done(&wg);
}

static int libc_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	atomic_store(&phase, 0);
	atomic_store(&other_ran, 0);
	uint64_t seq;
	uintptr_t pcs[64];
	preempt_recent_pcs(0, pcs, 0, &seq);
	struct sysmon_stats before = stats();
	int64_t old = sysmon_set_forcepreempt(1000 * 1000);
	gort_wg_add(&wg, 2);
	ck_assert_int_gt(gort_go(memcmp_spinner, NULL), 0);
	ck_assert_int_gt(gort_go(memcmp_other, NULL), 0);
	gort_wg_wait(&wg);
	sysmon_set_forcepreempt(old);
	struct sysmon_stats after = stats();
	/* signals arrived while it was in memcmp and were deferred... */
	ck_assert_uint_gt(after.preempt_deferred, before.preempt_deferred);
	/* ...every stop was in our own code, never in libc... */
	int n = preempt_recent_pcs(seq, pcs, 64, NULL);
	for (int i = 0; i < n; i++)
		ck_assert_msg(in_this_program(pcs[i]), "preempted at %#lx, in %s", (unsigned long)pcs[i],
			      pc_object(pcs[i]));
	/* ...and one came once it was back there, or memcmp_other would not have run */
	ck_assert_uint_gt(after.preempt_async, before.preempt_async);
	ck_assert_int_gt(n, 0);
	return 0;
}

START_TEST(test_not_preempted_inside_libc)
{
	buflen = 4 << 20;
	bufa = malloc(buflen);
	bufb = malloc(buflen);
	ck_assert(bufa && bufb);
	memset(bufa, 0x5a, buflen);
	memset(bufb, 0x5a, buflen);
	memcmp_rounds = heavy(1500);
	run_gort(libc_main, 1, 0);
	free(bufa);
	free(bufb);
}
END_TEST

/* ---- the handler's other refusals: syscall section, runtime lock, unknown code ---- */

static struct g *_Atomic target;
static struct m *_Atomic target_m;
static _Atomic int target_state;

/* The calling goroutine is the one to poke, on its current M. */
static void publish_target(void)
{
	atomic_store(&target, getg());
	atomic_store(&target_m, getg()->m);
}

/* Sends n preemption requests to target's M the way sysmon does, 1 ms apart
 * (until its first preemption the target stays on that M). */
static void poke(int n)
{
	struct g *gp = atomic_load(&target);
	for (int i = 0; i < n; i++) {
		atomic_store(&gp->preempt, true);
		preemptM(atomic_load(&target_m));
		gort_sleep(1000 * 1000);
	}
}

/* Pokes until n more signals were deferred (a signal sent to a thread that has
 * not run since the last one merges with it, so not every poke arrives), at
 * most 1000 times. */
static void poke_until_deferred(struct sysmon_stats before, uint64_t n)
{
	for (int i = 0; i < 1000 && stats().preempt_deferred - before.preempt_deferred < n; i++)
		poke(1);
}

PREEMPTIBLE static void in_syscall_section(void *arg)
{
	(void)arg;
	gort_syscall_enter();
	publish_target();
	atomic_store(&target_state, 1);
	while (atomic_load_explicit(&target_state, memory_order_relaxed) == 1)
		;
	gort_syscall_exit();
	gort_wg_done(&wg);
}

PREEMPTIBLE static void holding_runtime_lock(void *arg)
{
	(void)arg;
	struct m *mp = acquirem();
	publish_target();
	atomic_store(&target_state, 1);
	while (atomic_load_explicit(&target_state, memory_order_relaxed) == 1)
		;
	releasem(mp);
	/* no lock now: the next request stops us here */
	atomic_store(&target_state, 3);
	while (atomic_load_explicit(&target_state, memory_order_relaxed) == 3)
		;
	gort_wg_done(&wg);
}

static int refusal_main(int argc, char **argv)
{
	gort_fn fn = (gort_fn)(uintptr_t)argv[1];
	(void)argc;
	register_test_code();
	atomic_store(&target_state, 0);
	gort_wg_add(&wg, 1);
	ck_assert_int_gt(gort_go(fn, NULL), 0);
	while (atomic_load(&target_state) != 1)
		gort_sleep(1000 * 1000);
	struct sysmon_stats before = stats();
	poke_until_deferred(before, 5);
	struct sysmon_stats after = stats();
	ck_assert_uint_ge(after.preempt_deferred - before.preempt_deferred, 5);
	ck_assert_uint_eq(after.preempt_async, before.preempt_async);
	if (fn == holding_runtime_lock) {
		atomic_store(&target_state, 2);
		while (atomic_load(&target_state) != 3)
			gort_sleep(1000 * 1000);
		before = stats();
		for (int i = 0; i < 2000 && stats().preempt_async == before.preempt_async; i++)
			poke(1);
		ck_assert_uint_gt(stats().preempt_async, before.preempt_async);
	}
	atomic_store(&target_state, 4);
	gort_wg_wait(&wg);
	return 0;
}

static void run_refusal(gort_fn fn)
{
	struct gort_config cfg = { .procs = 2 };
	char *argv[] = { (char *)"test", (char *)(uintptr_t)fn, NULL };
	ck_assert_int_eq(gort_run(refusal_main, 2, argv, &cfg), 0);
}

START_TEST(test_not_preempted_in_syscall_section)
{
	run_refusal(in_syscall_section);
}
END_TEST

START_TEST(test_not_preempted_holding_runtime_lock)
{
	run_refusal(holding_runtime_lock);
}
END_TEST

/* Code in no registered range (here: generated at run time, as a JIT would) is not
 * program code: never interrupted until registered. */
static void *jitpage;
static _Atomic int jitflag;

static void jit_runner(void *arg)
{
	(void)arg;
	publish_target();
	atomic_store(&target_state, 1);
	((void (*)(_Atomic int *))jitpage)(&jitflag); /* returns once jitflag != 0 */
	gort_wg_done(&wg);
}

static int jit_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	atomic_store(&target_state, 0);
	atomic_store(&jitflag, 0);
	gort_wg_add(&wg, 1);
	ck_assert_int_gt(gort_go(jit_runner, NULL), 0);
	while (atomic_load(&target_state) != 1)
		gort_sleep(1000 * 1000);
	gort_sleep(5 * 1000 * 1000); /* well inside the loop */
	struct sysmon_stats before = stats();
	poke_until_deferred(before, 5);
	struct sysmon_stats after = stats();
	ck_assert_uint_ge(after.preempt_deferred - before.preempt_deferred, 5);
	ck_assert_uint_eq(after.preempt_async, before.preempt_async);

	uint64_t seq;
	uintptr_t pcs[64];
	preempt_recent_pcs(0, pcs, 0, &seq);
	uintptr_t lo = (uintptr_t)jitpage, hi = lo + 4096;
	assert_ok(preempt_code_add(lo, hi));
	before = stats();
	for (int i = 0; i < 2000 && stats().preempt_async == before.preempt_async; i++)
		poke(1);
	ck_assert_uint_gt(stats().preempt_async, before.preempt_async);
	int n = preempt_recent_pcs(seq, pcs, 64, NULL);
	ck_assert_int_gt(n, 0);
	ck_assert(pcs[0] >= lo && pcs[0] < hi);
	atomic_store(&jitflag, 1);
	gort_wg_wait(&wg);
	assert_ok(preempt_code_remove(lo, hi));
	return 0;
}

START_TEST(test_unregistered_code_not_preempted)
{
	static const unsigned char code[] = {
#if defined(__x86_64__)
		0x83, 0x3f, 0x00, /* 1: cmpl $0, (%rdi) */
		0x74, 0xfb,       /*    je 1b */
		0xc3,             /*    ret */
#elif defined(__aarch64__)
		0x01, 0x00, 0x40, 0xb9, /* 1: ldr w1, [x0] */
		0xe1, 0xff, 0xff, 0x34, /*    cbz w1, 1b */
		0xc0, 0x03, 0x5f, 0xd6, /*    ret */
#endif
	};
	jitpage = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(jitpage != MAP_FAILED);
	memcpy(jitpage, code, sizeof code);
	__builtin___clear_cache((char *)jitpage, (char *)jitpage + sizeof code);
	if (mprotect(jitpage, 4096, PROT_READ | PROT_EXEC) < 0) {
		fprintf(stderr, "test_unregistered_code_not_preempted: no executable mappings here (%s); skipped\n",
			strerror(errno));
		return;
	}
	run_gort(jit_main, 2, 0);
	munmap(jitpage, 4096);
}
END_TEST

/* ---- cooperative: a loop that calls the runtime yields at the call ---- */

static _Atomic int coop_looping;

static void coop_looper(void *arg)
{
	(void)arg;
	atomic_store(&coop_looping, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		(void)gort_now();
	gort_wg_done(&wg);
}

/* Stops the looper once it has run: on the one P, the stopper then runs only
 * if the looper gave the P up. (Without the wait, a process kept off the CPU
 * for 20 ms -- valgrind on a loaded machine -- can find the stopper's timer
 * expired before the looper ever ran: one valgrind run in ten here counted
 * no preemption at all.) */
static void coop_stopper(void *arg)
{
	(void)arg;
	do
		gort_sleep(20 * 1000 * 1000);
	while (!atomic_load(&coop_looping));
	atomic_store(&stop, 1);
	gort_wg_done(&wg);
}

static int coop_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* The signal cannot stop the looper: this program's code is not program
	 * code for now (-ENOENT in a static build, where it never was). */
	int r = preempt_code_remove_object((const void *)(uintptr_t)coop_looper);
	ck_assert(r == 0 || r == -ENOENT);
	atomic_store(&stop, 0);
	atomic_store(&coop_looping, 0);
	struct sysmon_stats before = stats();
	gort_wg_add(&wg, 2);
	ck_assert_int_gt(gort_go(coop_looper, NULL), 0);
	ck_assert_int_gt(gort_go(coop_stopper, NULL), 0);
	gort_wg_wait(&wg);
	struct sysmon_stats after = stats();
	if (r == 0)
		assert_ok(preempt_code_add_object((const void *)(uintptr_t)coop_looper));
	ck_assert_uint_gt(after.preempt_cooperative, before.preempt_cooperative);
	ck_assert_uint_eq(after.preempt_async, before.preempt_async);
	return 0;
}

START_TEST(test_cooperative_preemption_at_runtime_calls)
{
	run_gort(coop_main, 1, 0);
}
END_TEST

/* ---- a locked goroutine is preempted and keeps its thread ---- */

static _Atomic pid_t tid_before, tid_after;

PREEMPTIBLE static void locked_spinner(void *arg)
{
	(void)arg;
	gort_lock_os_thread();
	atomic_store(&tid_before, test_gettid());
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		atomic_store_explicit(&counter, atomic_load_explicit(&counter, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	atomic_store(&tid_after, test_gettid());
	gort_unlock_os_thread();
	gort_wg_done(&wg);
}

static int locked_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	atomic_store(&stop, 0);
	atomic_store(&counter, 0);
	struct sysmon_stats before = stats();
	gort_wg_add(&wg, 2);
	ck_assert_int_gt(gort_go(locked_spinner, NULL), 0);
	ck_assert_int_gt(gort_go(stopper, NULL), 0);
	gort_wg_wait(&wg);
	ck_assert_uint_gt(stats().preempt_async, before.preempt_async);
	ck_assert_int_eq(atomic_load(&tid_before), atomic_load(&tid_after));
	return 0;
}

START_TEST(test_locked_goroutine_preempted_keeps_thread)
{
	run_gort(locked_main, 1, 0);
}
END_TEST

/* ---- gort_run returns while goroutines spin forever ---- */

PREEMPTIBLE static void spin_forever(void *arg)
{
	(void)arg;
	for (;;)
		atomic_store_explicit(&counter, atomic_load_explicit(&counter, memory_order_relaxed) + 1,
				      memory_order_relaxed);
}

PREEMPTIBLE static void spin_forever_locked(void *arg)
{
	gort_lock_os_thread();
	spin_forever(arg);
}

static int forever_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	for (int i = 0; i < 3; i++)
		ck_assert_int_gt(gort_go(spin_forever, NULL), 0);
	ck_assert_int_gt(gort_go(spin_forever_locked, NULL), 0);
	gort_sleep(30 * 1000 * 1000);
	return 5;
}

START_TEST(test_run_returns_while_goroutines_spin)
{
	int64_t t0 = gort_now();
	run_gort(forever_main, 2, 5);
	run_gort(forever_main, 1, 5);
	/* generous: each stop takes a few sysmon rounds */
	ck_assert_int_lt(gort_now() - t0, 20LL * 1000 * 1000 * 1000);
}
END_TEST

/* ---- the code table changes while handlers read it ---- */

/* Module loads and unloads replace the table the handler reads: a thread
 * adds and removes ranges without pause while a spinner is preempted over and
 * over on one P. The handler must keep finding the test code (the spinner
 * gives way) and never read a freed table (valgrind and ASan would see it). */
static _Atomic int churn_stop;
static _Atomic long churn_rounds;

static void *churner(void *arg)
{
	(void)arg;
	for (uintptr_t i = 0; !atomic_load(&churn_stop); i++) {
		uintptr_t lo = 0x200000 + (i % 97) * 0x1000;
		assert_ok(preempt_code_add(lo, lo + 0x800));
		assert_ok(preempt_code_remove(lo, lo + 0x800));
		atomic_fetch_add(&churn_rounds, 1);
	}
	return NULL;
}

static int churn_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	/* a table larger than the old fixed one, all the while */
	for (uintptr_t i = 0; i < 100; i++)
		assert_ok(preempt_code_add(0x8000000 + i * 0x1000, 0x8000000 + i * 0x1000 + 0x100));
	atomic_store(&churn_stop, 0);
	atomic_store(&churn_rounds, 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, churner, NULL), 0);
	atomic_store(&stop, 0);
	atomic_store(&counter, 0);
	struct sysmon_stats before = stats();
	gort_wg_add(&wg, 2);
	ck_assert_int_gt(gort_go(spin_until_stop, NULL), 0);
	ck_assert_int_gt(gort_go(stopper, NULL), 0);
	gort_wg_wait(&wg);
	/* a few more preemptions with the churn going on */
	for (int k = 0; k < 3; k++) {
		atomic_store(&stop, 0);
		atomic_store(&counter, 0);
		gort_wg_add(&wg, 2);
		ck_assert_int_gt(gort_go(spin_until_stop, NULL), 0);
		ck_assert_int_gt(gort_go(stopper, NULL), 0);
		gort_wg_wait(&wg);
	}
	atomic_store(&churn_stop, 1);
	pthread_join(th, NULL);
	struct sysmon_stats after = stats();
	ck_assert_uint_ge(after.preempt_async - before.preempt_async, 4);
	ck_assert_int_gt(atomic_load(&churn_rounds), 0);
	for (uintptr_t i = 0; i < 100; i++)
		assert_ok(preempt_code_remove(0x8000000 + i * 0x1000, 0x8000000 + i * 0x1000 + 0x100));
	ck_assert(preempt_code_contains((uintptr_t)spin_until_stop));
	return 0;
}

START_TEST(test_code_table_replaced_under_handlers)
{
	run_gort(churn_main, 1, 0);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_code_range_errors)
{
	ck_assert_int_eq(preempt_code_add(100, 100), -EINVAL);
	ck_assert_int_eq(preempt_code_add(200, 100), -EINVAL);
	ck_assert_int_eq(preempt_code_remove(0x1000, 0x2000), -ENOENT);
	ck_assert_int_eq(preempt_code_remove(0, 0), -ENOENT);
	ck_assert_int_eq(preempt_code_add_object(NULL), -ENOENT);
	ck_assert_int_eq(preempt_code_remove_object(NULL), -ENOENT);
	/* the same range twice is one range */
	assert_ok(preempt_code_add(0x1000, 0x2000));
	assert_ok(preempt_code_add(0x1000, 0x2000));
	assert_ok(preempt_code_remove(0x1000, 0x2000));
	ck_assert_int_eq(preempt_code_remove(0x1000, 0x2000), -ENOENT);
	/* no limit: hundreds of ranges, nested and overlapping, looked up as the
	 * handler does, then removed in another order */
	enum { NR = 300 };
	/* addresses no code can be at (valgrind, for one, loads the program at
	 * 0x108000): a reservation of our own */
	void *res = mmap(NULL, NR * 0x100 + 0x1000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(res != MAP_FAILED);
	const uintptr_t B = (uintptr_t)res;
	for (uintptr_t i = 0; i < NR; i++)
		assert_ok(preempt_code_add(B + i * 0x100, B + i * 0x100 + 0x10));
	assert_ok(preempt_code_add(B, B + NR * 0x100)); /* around them all */
	assert_ok(preempt_code_add(B + 5 * 0x100 + 4, B + 5 * 0x100 + 8)); /* inside one */
	for (uintptr_t i = 0; i < NR; i++) {
		ck_assert(preempt_code_contains(B + i * 0x100));
		ck_assert(preempt_code_contains(B + i * 0x100 + 0x80)); /* the big one */
	}
	ck_assert(!preempt_code_contains(B - 1));
	ck_assert(!preempt_code_contains(B + NR * 0x100));
	assert_ok(preempt_code_remove(B, B + NR * 0x100));
	ck_assert(!preempt_code_contains(B + 7 * 0x100 + 0x80)); /* a gap again */
	ck_assert(preempt_code_contains(B + 5 * 0x100 + 6));
	for (uintptr_t i = NR; i-- > 0;)
		if (i % 2)
			assert_ok(preempt_code_remove(B + i * 0x100, B + i * 0x100 + 0x10));
	ck_assert(!preempt_code_contains(B + 3 * 0x100));
	ck_assert(preempt_code_contains(B + 4 * 0x100));
	for (uintptr_t i = 0; i < NR; i++)
		if (i % 2 == 0)
			assert_ok(preempt_code_remove(B + i * 0x100, B + i * 0x100 + 0x10));
	ck_assert(preempt_code_contains(B + 5 * 0x100 + 6)); /* the nested one stays */
	assert_ok(preempt_code_remove(B + 5 * 0x100 + 4, B + 5 * 0x100 + 8));
	ck_assert(!preempt_code_contains(B + 5 * 0x100 + 6));
	ck_assert_int_eq(preempt_code_remove(B, 0x100010), -ENOENT);
	munmap(res, NR * 0x100 + 0x1000);
	/* the runtime's own code never counts */
	ck_assert(!preempt_code_contains((uintptr_t)gort_yield));
	assert_ok(preempt_code_add(0x1000, 0x2000));
	assert_ok(preempt_code_remove(0x1000, 0x2000));
	/* an object: this test program */
	assert_ok(preempt_code_add_object((const void *)(uintptr_t)test_code_range_errors));
	assert_ok(preempt_code_remove_object((const void *)(uintptr_t)test_code_range_errors));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("preempt");
	TCase *tc = tcase_create("preempt");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_spinning_goroutine_does_not_block_one_p);
	tcase_add_test(tc, test_fp_vector_state_bit_exact_under_preemption);
	tcase_add_test(tc, test_not_preempted_inside_libc);
	tcase_add_test(tc, test_not_preempted_in_syscall_section);
	tcase_add_test(tc, test_not_preempted_holding_runtime_lock);
	tcase_add_test(tc, test_unregistered_code_not_preempted);
	tcase_add_test(tc, test_cooperative_preemption_at_runtime_calls);
	tcase_add_test(tc, test_locked_goroutine_preempted_keeps_thread);
	tcase_add_test(tc, test_run_returns_while_goroutines_spin);
	tcase_add_test(tc, test_code_range_errors);
	tcase_add_test(tc, test_code_table_replaced_under_handlers);
	suite_add_tcase(s, tc);
	return test_main(s);
}
