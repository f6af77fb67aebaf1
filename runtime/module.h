/* runtime/module.h: task and plugin binaries loaded from an fd (ELF checks, private memfd copy, dlopen). */
#ifndef GORT_MODULE_H
#define GORT_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gort.h"

/* A loaded binary: one independent instance, whatever else is loaded. */
struct module {
	void *handle;                      /* dlopen's */
	int memfd;                         /* the private copy it was loaded from */
	char path[32];                     /* "/proc/self/fd/N": its name in the link map */
	uintptr_t base;                    /* load address (link_map l_addr) */
	uintptr_t textlo, texthi;          /* span of its executable segments */
	const struct gort_init_record **inits; /* GORT_INIT records, in source order */
	size_t ninits;
	int slot;                          /* index in the fault-lookup table */
	bool preemptible;                  /* its code is registered with preempt_code_add */
	char label[64];                    /* what it is called in names ("fanout.so") */
	struct modsym *syms;               /* its functions by address (.symtab, else .dynsym) */
	size_t nsyms;
	char *symstr;                      /* their names */
};

/* One function of a module: [lo, lo + size) relocated, name at symstr + name. */
struct modsym {
	uintptr_t lo, size;
	uint32_t name;
};

/* What a code address is: the function (its symbol, static functions included
 * for modules not stripped) and the offset into it, else the object and the
 * offset into it. */
struct pcsym {
	char func[96];     /* "" when no symbol covers pc */
	char obj[64];      /* the module's label, or the shared object's base name; "" if unknown */
	uintptr_t off;     /* from func's start, else from obj's load address, else 0 */
};

/* Upper bound on a binary's size (a memfd copy is kept per instance). */
#define MODULE_MAX_SIZE (512UL << 20)

/* module_load: copy the binary in fd (from offset 0; fd is not consumed) into a
 * memfd, check it (ELF, 64-bit little-endian, this machine, a shared object and
 * not an executable or PIE, no executable stack, exporting entry with a
 * definition), give it a private identity (its DT_SONAME is removed, so that no
 * other load, nor a DT_NEEDED name, can resolve to it), dlopen it RTLD_NOW |
 * RTLD_LOCAL, and collect its GORT_INIT records in source order.
 * what names the kind ("task", "plugin") and label the instance (memfd name and
 * messages). On success *ret owns the module (module_unload it).
 * On failure: negative errno and one line in errbuf (if errlen > 0):
 *	-ENOEXEC  every rejection of the binary itself, and dlopen failures (dlerror text)
 *	-EFBIG    larger than MODULE_MAX_SIZE
 *	-EACCES   the kernel refuses executable memfds (vm.memfd_noexec=2)
 *	other     reading fd, memfd_create, mmap, out of memory */
int module_load(int fd, const char *what, const char *label, const char *entry, struct module **ret,
		char *errbuf, size_t errlen);

/* module_sym: the address of a symbol the module itself defines (not one of its
 * dependencies'), or NULL. */
void *module_sym(struct module *m, const char *name);

/* module_unload: dlclose, close the memfd, free. Only once none of its code runs
 * and nothing points into it. Accepts NULL; returns NULL. */
struct module *module_unload(struct module *m);

/* module_pc_owner: whether pc lies in the executable segments of a loaded
 * module. Async-signal-safe (the fault handler uses it): lock-free reads only. */
bool module_pc_loaded(uintptr_t pc);

/* module_pc_symbol: names pc for traces, events and goroutine listings: in a
 * loaded module, from the module's own symbol table (static functions too);
 * elsewhere (the runtime, libc) through dladdr; else a bare address. The
 * caller keeps pc's module loaded meanwhile (a running task's code). Takes a
 * mutex: not for signal handlers. */
void module_pc_symbol(uintptr_t pc, struct pcsym *ret);

/* module_pc_format: "func+0xoff" / "func" / "obj+0xoff" / "0xaddr" into buf. */
void module_pc_format(uintptr_t pc, char *buf, size_t n);

/* How many modules are loaded now (tests check that unloads happen). */
int64_t module_count(void);

#endif
