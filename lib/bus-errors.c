/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-errors.c: the D-Bus error name <-> errno table (see bus-errors.h). */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bus-errors.h"
#include "macro.h"

const sd_bus_error_map sealvol_bus_errors[] = {
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_TPM, ENODEV),
        SD_BUS_ERROR_MAP(BUS_ERROR_OTHER_TPM, ENXIO),
        /* The TPM's key (its EK) is not vouched for by a configured maker's CA. */
        SD_BUS_ERROR_MAP(BUS_ERROR_UNTRUSTED_TPM, EKEYREVOKED),
        SD_BUS_ERROR_MAP(BUS_ERROR_PCR_MISMATCH, ESTALE),
        SD_BUS_ERROR_MAP(BUS_ERROR_TPM_LOCKOUT, ENOLCK),
        SD_BUS_ERROR_MAP(BUS_ERROR_DAMAGED, EBADMSG),
        SD_BUS_ERROR_MAP(BUS_ERROR_NEWER_FORMAT, EPROTONOSUPPORT),
        SD_BUS_ERROR_MAP(BUS_ERROR_NOT_LUKS2, EMEDIUMTYPE),
        SD_BUS_ERROR_MAP(BUS_ERROR_NOT_SEALVOL, ENOMSG),
        SD_BUS_ERROR_MAP(BUS_ERROR_TOKEN_FROM_OTHER_VOLUME, EXDEV),
        SD_BUS_ERROR_MAP(BUS_ERROR_OTHER_SERVER, EREMOTE),
        SD_BUS_ERROR_MAP(BUS_ERROR_WRONG_KEY, EPERM),
        SD_BUS_ERROR_MAP(BUS_ERROR_RECOVERY_PASSWORD_TYPO, EDOM),
        SD_BUS_ERROR_MAP(BUS_ERROR_RECOVERY_PASSWORD_RANGE, ERANGE),
        SD_BUS_ERROR_MAP(BUS_ERROR_DEVICE_NOT_EMPTY, EEXIST),
        SD_BUS_ERROR_MAP(BUS_ERROR_DAMAGED_HEADER, EUCLEAN),
        SD_BUS_ERROR_MAP(BUS_ERROR_TAMPERED, EBADE),
        SD_BUS_ERROR_MAP(BUS_ERROR_CERTIFICATE_REJECTED, EKEYREJECTED),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_SUCH_VOLUME, ENOENT),
        SD_BUS_ERROR_MAP(BUS_ERROR_DEVICE_MISSING, ENOMEDIUM),
        SD_BUS_ERROR_MAP(BUS_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_PROTECTOR, ENOKEY),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_COPY, ENODATA),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_VMK, ENOPKG),
        SD_BUS_ERROR_MAP(BUS_ERROR_TOO_MANY, E2BIG),
        SD_BUS_ERROR_MAP(BUS_ERROR_ESCROW_FAILED, ECOMM),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_SPACE, ENOSPC),
        /* Named explicitly where it applies (in-place encryption); the errno says "foreign content". */
        SD_BUS_ERROR_MAP(BUS_ERROR_UNSUPPORTED_CONTENT, EMEDIUMTYPE),
        SD_BUS_ERROR_MAP_END,
};

const char *bus_error_name_from_errno(int error) {
        error = error < 0 ? -error : error;
        for (const sd_bus_error_map *m = sealvol_bus_errors; m->name; m++)
                if (m->code == error)
                        return m->name;
        return NULL;
}

int bus_error_set(sd_bus_error *error, int r, const char *format, ...) {
        const char *name = bus_error_name_from_errno(r);
        char buf[512];
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);
        if (name)
                return sd_bus_error_set(error, name, buf);
        return sd_bus_error_set_errnof(error, r, "%s: %s", buf, strerror(r < 0 ? -r : r));
}
