/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* openssl-util.c: OpenSSL's error queue into the debug log (see openssl-util.h). */

#include <openssl/err.h>

#include "log.h"
#include "openssl-util.h"

int log_openssl_errors(int error, const char *what) {
        unsigned long e;
        bool any = false;

        while ((e = ERR_get_error()) != 0) {
                char buf[256];

                ERR_error_string_n(e, buf, sizeof(buf));
                log_debug("%s: %s", what, buf);
                any = true;
        }
        if (!any)
                log_debug("%s (no OpenSSL error recorded)", what);
        return error;
}
