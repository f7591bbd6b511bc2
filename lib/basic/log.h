/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log.h: one logging entry point. Errors are logged once, where they are handled:
 *
 *         return log_error_errno(r, "Failed to unseal VMK: %m");
 *
 * sets errno from r for %m and returns r as a negative errno. Library code (lib/) logs at debug
 * level only; the daemon and the CLI decide what the user sees. Never pass a secret to these.
 */
#pragma once

#include <syslog.h>

#include "macro.h"

int log_get_max_level(void);
void log_set_max_level(int level);
/* Reads SEALVOL_LOG_LEVEL ("debug", "info", ... or a number); unknown values are ignored. */
void log_parse_environment(void);
int log_level_from_string(const char *s);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...)
        _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                       \
        ({                                                                                      \
                int _level_ = (level), _e_ = (error);                                           \
                _e_ = _e_ < 0 ? -_e_ : _e_;                                                     \
                (log_get_max_level() >= _level_)                                                \
                        ? log_internal(_level_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -_e_;                                                                 \
        })

#define log_full(level, ...) ((void) log_full_errno(level, 0, __VA_ARGS__))

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
