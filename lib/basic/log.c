/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.c: leveled logging to stderr with %m support; see log.h for the convention. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static int log_max_level = LOG_INFO;

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_max_level(int level) {
        if (level >= LOG_EMERG && level <= LOG_DEBUG)
                log_max_level = level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",       [LOG_WARNING] = "warning",
                [LOG_NOTICE] = "notice", [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };
        char *end;
        long v;

        if (isempty(s))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < LOG_EMERG || v > LOG_DEBUG)
                return -EINVAL;
        return (int) v;
}

void log_parse_environment(void) {
        int level = log_level_from_string(getenv("SEALVOL_LOG_LEVEL"));

        if (level >= 0)
                log_set_max_level(level);
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        /* Format into one buffer and write it with one call, so concurrent writers do not interleave
         * inside a line. */
        char buf[2048];
        va_list ap;

        errno = error; /* for %m */
        va_start(ap, format);
        if (vsnprintf(buf, sizeof(buf), format, ap) < 0)
                buf[0] = '\0';
        va_end(ap);

        if (level == LOG_DEBUG)
                fprintf(stderr, "debug: %s (%s:%d %s)\n", buf, file, line, func);
        else
                fprintf(stderr, "%s\n", buf);

        return -error;
}
