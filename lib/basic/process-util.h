/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * process-util.h: running a helper program (an escrow hook, e2fsck, resize2fs) from a daemon: a bare
 * environment, no inherited descriptors, its own process group, and a time limit.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define SPAWN_OUTPUT_MAX ((size_t) 4096)

/* Runs argv (argv[0] an absolute path) with data on its stdin, PATH and LANG only in its environment,
 * in its own process group, with no descriptors but stdin, stdout and stderr. It gets timeout_sec
 * seconds to exit, or its whole process group is killed (-ETIMEDOUT, *ret_error "killed after N s").
 * Exit status 0 is success, with the first line of its stdout (at most SPAWN_OUTPUT_MAX bytes read) in
 * *ret_output. Any other status is -EREMOTEIO, with the status and the last line of its stderr in
 * *ret_error. -ENOENT / -EACCES: it cannot be executed. SIGPIPE from a child that does not read its
 * input is absorbed. */
int spawn_run(char *const argv[], const void *data, size_t size, unsigned timeout_sec, char **ret_output,
              char **ret_error);

/* Starts argv (argv[0] an absolute path) with fd as its stdin and stdout, stderr shared with the
 * caller (its log lines go where the caller's go), in its own process group, with no other
 * descriptor, PATH and LANG in its environment and those of pass_env (NULL-terminated names) that
 * the caller has. The caller reaps it (and kills its group, -pid). */
int spawn_on_fd(char *const argv[], int fd, const char *const *pass_env, pid_t *ret_pid);
