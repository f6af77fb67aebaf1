/* examples/tasks/plugin_user.c: a task that calls into a plugin through gort_plugin_sym (load examples/plugins/lifecycle first). */
#include <errno.h>
#include <gort.h>
#include <string.h>

/*   gortctl plugin load build/examples/plugins/lifecycle.so
 *   gortctl submit --wait build/examples/plugin_user.so
 * While this task runs, `gortctl plugin unload lifecycle` is refused: the task
 * holds the plugin from its first gort_plugin_sym until it ends. */

int gort_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	long long (*seen)(void) = (long long (*)(void))gort_plugin_sym("lifecycle", "lifecycle_events_seen");
	if (!seen) {
		gort_eprintf("plugin_user: no lifecycle plugin: %s\n", strerror(errno));
		return 1;
	}
	gort_printf("the lifecycle plugin has seen %lld events so far\n", seen());
	return 0;
}
