/* runtime/module.c: loading a task or plugin binary from an fd: ELF checks, a private memfd copy, dlopen. */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "module.h"
#include "runtime.h"

/*
 * A binary reaches the runtime as a file descriptor, never as a path: the
 * daemon does not open files on a client's behalf. It is copied into a memfd
 * (ours: nobody can change it between the checks and dlopen, and it is sealed
 * before dlopen), checked, and loaded with dlopen("/proc/self/fd/N").
 *
 * Why the checks before dlopen: dlopen runs the binary's constructors and, on
 * glibc before 2.41, a module that asks for an executable stack makes every
 * thread stack of the process executable. A clear one-line answer is also
 * friendlier than dlopen's text for the common mistakes (a PIE, an executable,
 * an object for another machine).
 *
 * Independent instances. glibc's dlopen returns an already-loaded object when
 * the name asked for matches its path or its DT_SONAME, or when the file is the
 * same inode. Each load here has its own memfd (a new inode) and its own path
 * (the memfd stays open as long as the module is loaded, so its fd number is
 * not reused meanwhile), and the copy's DT_SONAME entry is retagged into a tag
 * the dynamic linker ignores: two loads of one binary are two objects with two
 * sets of globals, and no other object's DT_NEEDED can bind to a task.
 * Rejected: dlmopen(LM_ID_NEWLM) per task: glibc has 16 namespaces, and each
 * would load its own libc.
 *
 * Fault attribution: the fault handler asks whether a pc is in a loaded
 * module's code. The table of code spans it reads is a list of fixed chunks that
 * only grows, written under a mutex and read lock-free: a signal handler may
 * not take locks.
 */

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif

/* The tag DT_SONAME is turned into: inside DT_LOOS..DT_HIOS, outside every range
 * glibc's elf_get_dynamic_info records (versions, DT_VALRNG, DT_ADDRRNG, extras). */
#define DT_GORT_SONAME_REMOVED 0x6fffe000

#if defined(__x86_64__)
#define EM_HOST EM_X86_64
#elif defined(__aarch64__)
#define EM_HOST EM_AARCH64
#endif

/* ---- the lock-free table of code spans ---- */

#define SPAN_CHUNK 256

struct span {
	_Atomic uintptr_t lo, hi; /* hi == 0: free */
	struct module *mod;       /* under span_lock */
};

struct span_chunk {
	struct span spans[SPAN_CHUNK];
	struct span_chunk *_Atomic next;
};

static struct span_chunk span_first;
static pthread_mutex_t span_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int64_t nmodules;

static int span_add(uintptr_t lo, uintptr_t hi, struct module *m)
{
	pthread_mutex_lock(&span_lock);
	int idx = 0;
	struct span_chunk *c = &span_first;
	for (;;) {
		for (int i = 0; i < SPAN_CHUNK; i++, idx++) {
			if (atomic_load(&c->spans[i].hi) == 0) {
				atomic_store(&c->spans[i].lo, lo);
				atomic_store(&c->spans[i].hi, hi);
				c->spans[i].mod = m;
				pthread_mutex_unlock(&span_lock);
				return idx;
			}
		}
		struct span_chunk *next = atomic_load(&c->next);
		if (!next) {
			next = calloc(1, sizeof(*next));
			if (!next) {
				pthread_mutex_unlock(&span_lock);
				return -ENOMEM;
			}
			atomic_store(&c->next, next);
		}
		c = next;
	}
}

static void span_del(int idx)
{
	pthread_mutex_lock(&span_lock);
	struct span_chunk *c = &span_first;
	while (idx >= SPAN_CHUNK) {
		c = atomic_load(&c->next);
		idx -= SPAN_CHUNK;
	}
	atomic_store(&c->spans[idx].hi, 0);
	atomic_store(&c->spans[idx].lo, 0);
	c->spans[idx].mod = NULL;
	pthread_mutex_unlock(&span_lock);
}

bool module_pc_loaded(uintptr_t pc)
{
	for (struct span_chunk *c = &span_first; c; c = atomic_load(&c->next))
		for (int i = 0; i < SPAN_CHUNK; i++) {
			uintptr_t lo = atomic_load(&c->spans[i].lo);
			uintptr_t hi = atomic_load(&c->spans[i].hi);
			if (hi && pc >= lo && pc < hi)
				return true;
		}
	return false;
}

int64_t module_count(void)
{
	return atomic_load(&nmodules);
}

/* ---- errors ---- */

static int fail(int r, char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(int r, char *errbuf, size_t errlen, const char *fmt, ...)
{
	if (errbuf && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static const char *machine_name(unsigned m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_X86_64: return "x86_64";
	case EM_AARCH64: return "aarch64";
	case EM_ARM: return "arm";
	case EM_RISCV: return "riscv";
	case EM_PPC64: return "ppc64";
	case EM_S390: return "s390";
	case EM_MIPS: return "mips";
	default: return NULL;
	}
}

/* ---- copying the binary ---- */

/* Copies all of src (from offset 0 if it is seekable, else what is left to read)
 * into dst; returns the size or negative errno. */
static int64_t copy_fd(int src, int dst)
{
	size_t bufsize = 64 * 1024;
	_cleanup_free_ char *buf = malloc(bufsize);
	if (!buf)
		return -ENOMEM;
	bool seekable = true;
	int64_t off = 0;
	for (;;) {
		ssize_t n = seekable ? pread(src, buf, bufsize, off) : read(src, buf, bufsize);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ESPIPE && seekable && off == 0) {
				seekable = false;
				continue;
			}
			return -errno;
		}
		if (n == 0)
			return off;
		if ((uint64_t)off + (uint64_t)n > MODULE_MAX_SIZE)
			return -EFBIG;
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(dst, buf + w, (size_t)(n - w));
			if (k < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			w += k;
		}
		off += n;
	}
}

/* ---- checking the image ---- */

struct elfinfo {
	bool entry_checked;      /* the section headers were there to look for entry */
	uint64_t init_addr, init_size;
	uint64_t textlo, texthi; /* unrelocated */
};

static bool in_file(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

static int check_image(uint8_t *img, size_t size, const char *what, const char *entry, struct elfinfo *ret,
		       char *errbuf, size_t errlen)
{
	if (size < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG) != 0)
		return fail(-ENOEXEC, errbuf, errlen, "not an ELF file");
	if (img[EI_CLASS] != ELFCLASS64)
		return fail(-ENOEXEC, errbuf, errlen, "wrong ELF class: %s, this host runs 64-bit code",
			    img[EI_CLASS] == ELFCLASS32 ? "32-bit" : "unknown");
	if (img[EI_DATA] != ELFDATA2LSB)
		return fail(-ENOEXEC, errbuf, errlen, "wrong byte order: big-endian, this host is little-endian");
	if (size < sizeof(Elf64_Ehdr))
		return fail(-ENOEXEC, errbuf, errlen, "truncated ELF header");
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	if (eh->e_machine != EM_HOST) {
		const char *m = machine_name(eh->e_machine);
		if (m)
			return fail(-ENOEXEC, errbuf, errlen, "wrong machine: built for %s, this host is %s", m,
				    machine_name(EM_HOST));
		return fail(-ENOEXEC, errbuf, errlen, "wrong machine: ELF machine %u, this host is %s",
			    eh->e_machine, machine_name(EM_HOST));
	}
	switch (eh->e_type) {
	case ET_DYN:
		break;
	case ET_EXEC:
		return fail(-ENOEXEC, errbuf, errlen,
			    "not a shared object: an executable (build the %s with -shared -fPIC)", what);
	case ET_REL:
		return fail(-ENOEXEC, errbuf, errlen,
			    "not a shared object: a relocatable object file (link the %s with -shared)", what);
	case ET_CORE:
		return fail(-ENOEXEC, errbuf, errlen, "not a shared object: a core dump");
	default:
		return fail(-ENOEXEC, errbuf, errlen, "not a shared object: ELF type %u", eh->e_type);
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    !in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), size) ||
	    eh->e_phoff % _Alignof(Elf64_Phdr) != 0)
		return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: bad program headers");

	Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff);
	Elf64_Phdr *dyn = NULL, *stack = NULL;
	bool interp = false;
	uint64_t textlo = UINT64_MAX, texthi = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		switch (ph[i].p_type) {
		case PT_INTERP:
			interp = true;
			break;
		case PT_DYNAMIC:
			dyn = &ph[i];
			break;
		case PT_GNU_STACK:
			stack = &ph[i];
			break;
		case PT_LOAD:
			if (ph[i].p_flags & PF_X) {
				if (ph[i].p_vaddr < textlo)
					textlo = ph[i].p_vaddr;
				if (ph[i].p_vaddr + ph[i].p_memsz > texthi)
					texthi = ph[i].p_vaddr + ph[i].p_memsz;
			}
			break;
		}
	}
	if (interp)
		return fail(-ENOEXEC, errbuf, errlen,
			    "not a shared object: a position-independent executable (build the %s with -shared, not -pie)",
			    what);
	if (!dyn)
		return fail(-ENOEXEC, errbuf, errlen, "not a shared object: no dynamic section");
	if (!stack || (stack->p_flags & PF_X))
		return fail(-ENOEXEC, errbuf, errlen, "needs an executable stack (link it with -z noexecstack)");
	if (texthi == 0)
		return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: no executable segment");
	ret->textlo = textlo;
	ret->texthi = texthi;

	/* DT_SONAME: retag it so that the instance has no name to be found by. */
	if (!in_file(dyn->p_offset, dyn->p_filesz, size) || dyn->p_offset % _Alignof(Elf64_Dyn) != 0)
		return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: bad dynamic section");
	Elf64_Dyn *d = (Elf64_Dyn *)(img + dyn->p_offset);
	for (size_t i = 0; i < dyn->p_filesz / sizeof(*d) && d[i].d_tag != DT_NULL; i++)
		if (d[i].d_tag == DT_SONAME)
			d[i].d_tag = DT_GORT_SONAME_REMOVED;

	/* Section headers, when present (strip keeps them): the entry symbol in
	 * .dynsym, and the GORT_INIT records. */
	ret->entry_checked = false;
	ret->init_addr = ret->init_size = 0;
	if (eh->e_shoff == 0 || eh->e_shnum == 0)
		return 0;
	if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), size) ||
	    eh->e_shoff % _Alignof(Elf64_Shdr) != 0 || eh->e_shstrndx >= eh->e_shnum)
		return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: bad section headers");
	Elf64_Shdr *sh = (Elf64_Shdr *)(img + eh->e_shoff);
	Elf64_Shdr *shstr = &sh[eh->e_shstrndx];
	if (!in_file(shstr->sh_offset, shstr->sh_size, size))
		return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: bad section names");
	const char *names = (const char *)img + shstr->sh_offset;
	bool found = false;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_name < shstr->sh_size &&
		    strnlen(names + sh[i].sh_name, shstr->sh_size - sh[i].sh_name) < shstr->sh_size - sh[i].sh_name &&
		    strcmp(names + sh[i].sh_name, "gort_init") == 0 && sh[i].sh_type == SHT_PROGBITS) {
			if (sh[i].sh_size % sizeof(struct gort_init_record) != 0)
				return fail(-ENOEXEC, errbuf, errlen, "corrupt gort_init section");
			ret->init_addr = sh[i].sh_addr;
			ret->init_size = sh[i].sh_size;
		}
		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		if (sh[i].sh_link >= eh->e_shnum || sh[i].sh_entsize != sizeof(Elf64_Sym) ||
		    !in_file(sh[i].sh_offset, sh[i].sh_size, size) || sh[i].sh_offset % _Alignof(Elf64_Sym) != 0)
			return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: bad dynamic symbol table");
		Elf64_Shdr *strs = &sh[sh[i].sh_link];
		if (!in_file(strs->sh_offset, strs->sh_size, size))
			return fail(-ENOEXEC, errbuf, errlen, "corrupt ELF file: bad dynamic string table");
		const char *str = (const char *)img + strs->sh_offset;
		Elf64_Sym *sym = (Elf64_Sym *)(img + sh[i].sh_offset);
		size_t elen = strlen(entry);
		ret->entry_checked = true;
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++) {
			if (sym[k].st_name >= strs->sh_size || strs->sh_size - sym[k].st_name <= elen ||
			    memcmp(str + sym[k].st_name, entry, elen + 1) != 0)
				continue;
			unsigned bind = ELF64_ST_BIND(sym[k].st_info);
			unsigned vis = ELF64_ST_VISIBILITY(sym[k].st_other);
			if (sym[k].st_shndx != SHN_UNDEF && (bind == STB_GLOBAL || bind == STB_WEAK) &&
			    (vis == STV_DEFAULT || vis == STV_PROTECTED))
				found = true;
		}
	}
	if (ret->entry_checked && !found)
		return -ENOENT; /* the caller words it */
	return 0;
}

/* ---- symbols ---- */

struct symtab {
	struct modsym *syms;
	size_t n;
	char *str;
};

static int modsym_cmp(const void *a, const void *b)
{
	const struct modsym *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Whether sym is a defined function whose name lies whole in names[0, len). */
static bool func_sym(const Elf64_Sym *sym, const char *names, uint64_t len)
{
	unsigned type = ELF64_ST_TYPE(sym->st_info);
	return (type == STT_FUNC || type == STT_GNU_IFUNC) && sym->st_shndx != SHN_UNDEF && sym->st_value != 0 &&
	       sym->st_name < len && memchr(names + sym->st_name, '\0', len - sym->st_name);
}

/* The image's function symbols (unrelocated), from .symtab when it was not
 * stripped, else from .dynsym. check_image has validated the section header
 * table; every symbol and name is bounds-checked here. A binary without
 * section headers or symbols simply has none: 0. */
static int read_symbols(const uint8_t *img, size_t size, struct symtab *ret)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	if (eh->e_shoff == 0 || eh->e_shnum == 0)
		return 0;
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff), *tab = NULL;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type == SHT_SYMTAB)
			tab = &sh[i];
		else if (sh[i].sh_type == SHT_DYNSYM && !tab)
			tab = &sh[i];
	}
	if (!tab || tab->sh_link >= eh->e_shnum || tab->sh_entsize != sizeof(Elf64_Sym) ||
	    !in_file(tab->sh_offset, tab->sh_size, size) || tab->sh_offset % _Alignof(Elf64_Sym) != 0)
		return 0;
	const Elf64_Shdr *strs = &sh[tab->sh_link];
	if (!in_file(strs->sh_offset, strs->sh_size, size) || strs->sh_size == 0)
		return 0;
	const Elf64_Sym *sym = (const Elf64_Sym *)(img + tab->sh_offset);
	const char *names = (const char *)img + strs->sh_offset;
	size_t nsym = tab->sh_size / sizeof(*sym), n = 0, strlen_total = 0;
	for (size_t k = 0; k < nsym; k++) {
		if (!func_sym(&sym[k], names, strs->sh_size))
			continue;
		n++;
		strlen_total += strlen(names + sym[k].st_name) + 1;
	}
	if (n == 0 || strlen_total > UINT32_MAX)
		return 0;
	ret->syms = malloc(n * sizeof(*ret->syms));
	ret->str = malloc(strlen_total);
	if (!ret->syms || !ret->str) {
		free(ret->syms);
		free(ret->str);
		*ret = (struct symtab){ 0 };
		return -ENOMEM;
	}
	size_t at = 0;
	for (size_t k = 0; k < nsym; k++) {
		if (!func_sym(&sym[k], names, strs->sh_size))
			continue;
		size_t len = strlen(names + sym[k].st_name) + 1;
		ret->syms[ret->n++] = (struct modsym){ .lo = sym[k].st_value, .size = sym[k].st_size, .name = (uint32_t)at };
		memcpy(ret->str + at, names + sym[k].st_name, len);
		at += len;
	}
	qsort(ret->syms, ret->n, sizeof(*ret->syms), modsym_cmp);
	return 0;
}

/* The function of m covering pc: the last symbol starting at or below pc, when
 * pc is inside its size (a symbol without a size covers up to the next one). */
static const struct modsym *modsym_find(const struct module *m, uintptr_t pc)
{
	size_t lo = 0, hi = m->nsyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->syms[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* among equal addresses (aliases) any; prefer one whose size covers pc */
	for (size_t i = lo; i-- > 0 && m->syms[i].lo == m->syms[lo - 1].lo;)
		if (m->syms[i].size == 0 || pc - m->syms[i].lo < m->syms[i].size)
			return &m->syms[i];
	return NULL;
}

/* The runtime's own object (the program, or libgort.so) never unloads: its
 * full symbol table (hidden and static functions: dladdr sees only exported
 * ones) is read once from the file, so that traces name schedule, goexit and
 * task_main instead of an offset. */
static pthread_once_t self_once = PTHREAD_ONCE_INIT;
static struct module self_syms;
static void *self_fbase;

static void self_syms_read(void)
{
	Dl_info di;
	struct link_map *lm = NULL;
	if (!dladdr1((void *)module_pc_symbol, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
		return;
	self_fbase = di.dli_fbase;
	/* the main program's link map entry has an empty name */
	const char *file = di.dli_fname && lm->l_name[0] ? di.dli_fname : "/proc/self/exe";
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(Elf64_Ehdr))
		return;
	void *img = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED)
		return;
	const Elf64_Ehdr *eh = img;
	struct symtab st = { 0 };
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
	    in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), (size_t)sb.st_size) &&
	    eh->e_shoff % _Alignof(Elf64_Shdr) == 0)
		(void)read_symbols(img, (size_t)sb.st_size, &st);
	munmap(img, (size_t)sb.st_size);
	const char *base = strrchr(file, '/');
	snprintf(self_syms.label, sizeof self_syms.label, "%s",
		 lm->l_name[0] ? (base ? base + 1 : file) : program_invocation_short_name);
	self_syms.base = lm->l_addr;
	self_syms.syms = st.syms;
	self_syms.nsyms = st.n;
	self_syms.symstr = st.str;
	for (size_t i = 0; i < st.n; i++)
		st.syms[i].lo += lm->l_addr;
}

void module_pc_symbol(uintptr_t pc, struct pcsym *ret)
{
	memset(ret, 0, sizeof(*ret));
	bool found = false;
	pthread_mutex_lock(&span_lock);
	for (struct span_chunk *c = &span_first; c && !found; c = atomic_load(&c->next))
		for (int i = 0; i < SPAN_CHUNK; i++) {
			struct module *m = c->spans[i].mod;
			if (!m || pc < m->textlo || pc >= m->texthi)
				continue;
			const struct modsym *s = modsym_find(m, pc);
			snprintf(ret->obj, sizeof ret->obj, "%s", m->label);
			if (s) {
				snprintf(ret->func, sizeof ret->func, "%s", m->symstr + s->name);
				ret->off = pc - s->lo;
			} else {
				ret->off = pc - m->base;
			}
			found = true;
			break;
		}
	pthread_mutex_unlock(&span_lock);
	if (found)
		return;
	Dl_info di;
	if (!dladdr((void *)pc, &di))
		return;
	pthread_once(&self_once, self_syms_read);
	const struct modsym *s;
	if (di.dli_fbase == self_fbase && self_syms.nsyms && (s = modsym_find(&self_syms, pc))) {
		snprintf(ret->obj, sizeof ret->obj, "%s", self_syms.label);
		snprintf(ret->func, sizeof ret->func, "%s", self_syms.symstr + s->name);
		ret->off = pc - s->lo;
		return;
	}
	if (di.dli_fname) {
		const char *base = strrchr(di.dli_fname, '/');
		snprintf(ret->obj, sizeof ret->obj, "%s", base ? base + 1 : di.dli_fname);
	}
	if (di.dli_sname && di.dli_saddr) {
		snprintf(ret->func, sizeof ret->func, "%s", di.dli_sname);
		ret->off = pc - (uintptr_t)di.dli_saddr;
	} else {
		ret->off = pc - (uintptr_t)di.dli_fbase;
	}
}

void module_pc_format(uintptr_t pc, char *buf, size_t n)
{
	struct pcsym s;
	module_pc_symbol(pc, &s);
	if (s.func[0] && s.off)
		snprintf(buf, n, "%s+%#lx", s.func, (unsigned long)s.off);
	else if (s.func[0])
		snprintf(buf, n, "%s", s.func);
	else if (s.obj[0])
		snprintf(buf, n, "%s+%#lx", s.obj, (unsigned long)s.off);
	else
		snprintf(buf, n, "%#lx", (unsigned long)pc);
}

static int init_cmp(const void *a, const void *b)
{
	/* rank (file's first appearance) in the high bits, line, then section order */
	const uint64_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* The records in source order: by file (in the order files first appear in
 * the section, which is link order), then line. */
static int collect_inits(struct module *m, const struct gort_init_record *recs, size_t n)
{
	if (n == 0)
		return 0;
	_cleanup_free_ uint64_t *keys = calloc(n, 2 * sizeof(uint64_t));
	m->inits = calloc(n, sizeof(*m->inits));
	if (!keys || !m->inits)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t rank = i;
		for (size_t j = 0; j < i; j++)
			if (recs[j].file == recs[i].file ||
			    (recs[j].file && recs[i].file && strcmp(recs[j].file, recs[i].file) == 0)) {
				rank = keys[2 * j] >> 40;
				break;
			}
		keys[2 * i] = (uint64_t)rank << 40 | (uint64_t)(recs[i].line & 0xffffff) << 16 | (i & 0xffff);
		keys[2 * i + 1] = i;
	}
	qsort(keys, n, 2 * sizeof(uint64_t), init_cmp);
	for (size_t i = 0; i < n; i++)
		m->inits[i] = &recs[keys[2 * i + 1]];
	m->ninits = n;
	return 0;
}

int module_load(int fd, const char *what, const char *label, const char *entry, struct module **ret,
		char *errbuf, size_t errlen)
{
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (fd < 0)
		return fail(-EBADF, errbuf, errlen, "no binary (bad file descriptor)");

	char mname[128];
	snprintf(mname, sizeof mname, "gort-%s:%s", what, label);
	_cleanup_close_ int mfd = memfd_create(mname, MFD_CLOEXEC | MFD_EXEC | MFD_ALLOW_SEALING);
	if (mfd < 0 && errno == EINVAL)
		mfd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING); /* kernels before MFD_EXEC */
	if (mfd < 0) {
		int r = -errno;
		if (r == -EACCES)
			return fail(r, errbuf, errlen, "executable memfds are forbidden here (vm.memfd_noexec)");
		return fail(r, errbuf, errlen, "memfd_create: %s", strerror(-r));
	}
	int64_t size = copy_fd(fd, mfd);
	if (size == -EFBIG)
		return fail(-EFBIG, errbuf, errlen, "binary larger than %lu MiB", MODULE_MAX_SIZE >> 20);
	if (size < 0)
		return fail((int)size, errbuf, errlen, "reading the binary: %s", strerror((int)-size));
	if (size == 0)
		return fail(-ENOEXEC, errbuf, errlen, "not an ELF file (empty)");

	uint8_t *img = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (img == MAP_FAILED)
		return fail(-errno, errbuf, errlen, "mmap: %m");
	struct elfinfo info = { 0 };
	int r = check_image(img, (size_t)size, what, entry, &info, errbuf, errlen);
	struct symtab st = { 0 };
	if (r == 0)
		r = read_symbols(img, (size_t)size, &st);
	munmap(img, (size_t)size);
	if (r == -ENOENT) {
		if (strcmp(entry, "gort_main") == 0)
			return fail(-ENOEXEC, errbuf, errlen,
				    "no gort_main: a task must define int gort_main(int argc, char **argv)");
		return fail(-ENOEXEC, errbuf, errlen, "no %s: the %s does not define it", entry, what);
	}
	if (r < 0)
		return r;
	/* Nothing may change the image between the checks and dlopen. */
	(void)fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);

	struct module *m = calloc(1, sizeof(*m));
	if (!m) {
		free(st.syms);
		free(st.str);
		return fail(-ENOMEM, errbuf, errlen, "out of memory");
	}
	m->memfd = -1;
	m->slot = -1;
	snprintf(m->label, sizeof m->label, "%s", label);
	m->syms = st.syms;
	m->nsyms = st.n;
	m->symstr = st.str;
	snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", mfd);
	m->handle = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
	if (!m->handle) {
		const char *e = dlerror();
		size_t plen = strlen(m->path);
		if (e && strncmp(e, m->path, plen) == 0 && e[plen] == ':')
			e += plen + 2;
		free(m->syms);
		free(m->symstr);
		free(m);
		return fail(-ENOEXEC, errbuf, errlen, "%s", e ? e : "dlopen failed");
	}
	m->memfd = mfd;
	mfd = -1;
	struct link_map *lm = NULL;
	if (dlinfo(m->handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm || strcmp(lm->l_name, m->path) != 0) {
		module_unload(m);
		return fail(-ENOEXEC, errbuf, errlen, "dlopen returned another object than the one loaded");
	}
	m->base = lm->l_addr;
	for (size_t i = 0; i < m->nsyms; i++)
		m->syms[i].lo += m->base;
	if (!info.entry_checked && !module_sym(m, entry)) {
		module_unload(m);
		if (strcmp(entry, "gort_main") == 0)
			return fail(-ENOEXEC, errbuf, errlen,
				    "no gort_main: a task must define int gort_main(int argc, char **argv)");
		return fail(-ENOEXEC, errbuf, errlen, "no %s: the %s does not define it", entry, what);
	}
	m->textlo = m->base + info.textlo;
	m->texthi = m->base + info.texthi;
	r = collect_inits(m, (const struct gort_init_record *)(m->base + info.init_addr),
			  info.init_size / sizeof(struct gort_init_record));
	if (r >= 0)
		r = m->slot = span_add(m->textlo, m->texthi, m);
	/* Its code is program code that asynchronous preemption may stop (only
	 * out of memory leaves a task with cooperative preemption alone). */
	if (r >= 0)
		m->preemptible = preempt_code_add(m->textlo, m->texthi) == 0;
	if (r < 0) {
		module_unload(m);
		return fail(r, errbuf, errlen, "out of memory");
	}
	atomic_fetch_add(&nmodules, 1);
	*ret = m;
	return 0;
}

void *module_sym(struct module *m, const char *name)
{
	void *p = dlsym(m->handle, name);
	if (!p)
		return NULL;
	/* dlsym also searches the module's dependencies: only its own counts. */
	Dl_info di;
	if (!dladdr(p, &di) || !di.dli_fname || strcmp(di.dli_fname, m->path) != 0)
		return NULL;
	return p;
}

struct module *module_unload(struct module *m)
{
	if (!m)
		return NULL;
	if (m->preemptible)
		preempt_code_remove(m->textlo, m->texthi);
	if (m->slot >= 0) {
		span_del(m->slot);
		atomic_fetch_sub(&nmodules, 1);
	}
	if (m->handle)
		dlclose(m->handle);
	if (m->memfd >= 0)
		close(m->memfd);
	free(m->inits);
	free(m->syms);
	free(m->symstr);
	free(m);
	return NULL;
}
