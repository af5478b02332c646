/*
 * argonctl_local.h - argonctl's offline commands: they open a page server's data
 * directory themselves (taking its lock, so never beside a running server).
 */
#ifndef AR_TOOLS_ARGONCTL_LOCAL_H
#define AR_TOOLS_ARGONCTL_LOCAL_H

/* argv[0] is "argonctl"; argv[1] is -D or --data-dir.  Returns the exit code. */
int argonctl_local(int argc, char **argv);
void argonctl_local_usage(void);

#endif
