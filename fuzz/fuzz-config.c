/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-config.c: the sealvol.conf parser. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *error = NULL;
        Config c;
        int r;

        config_init(&c);
        r = config_parse((const char *) data, size, "fuzz.conf", &c, &error);
        /* Errors are clear ones, with a message, or resource errors. */
        if (r < 0 && r != -EBADMSG && r != -ENOMEM)
                abort();
        if (r == -EBADMSG && !error)
                abort();
        free(error);
        config_done(&c);
        return 0;
}
