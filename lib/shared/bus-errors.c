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
        SD_BUS_ERROR_MAP(BUS_ERROR_DATA_ENCRYPTED, ENOTRECOVERABLE),
        /* Named explicitly where it applies (in-place encryption); the errno says "foreign content". */
        SD_BUS_ERROR_MAP(BUS_ERROR_UNSUPPORTED_CONTENT, EMEDIUMTYPE),
        SD_BUS_ERROR_MAP_END,
};

/* What each error means to the person who reads it, and what to do next; the CLI prints the message
 * as it is (docs/bus-api.md, "Errors"). */
static const struct {
        int code;
        const char *text;
} explanations[] = {
        { ENODEV, "there is no TPM behind the configured TCTI ([TPM] TCTI=, or /dev/tpmrm0)" },
        { ENXIO, "the VMK is sealed to another TPM, or this one was cleared; after a replaced TPM or main "
                 "board, run `sealvolctl tpm replace`" },
        { EKEYREVOKED, "the TPM in place is not one its maker certified ([TPM] EKCertificateCA=)" },
        { ESTALE, "the TPM refuses the VMK because the boot changed (PCRs differ from those it was sealed to); "
                  "recover with a recovery password, then `sealvolctl tpm reseal`" },
        { ENOLCK, "the TPM is in dictionary-attack lockout; wait for its recovery time" },
        { EBADMSG, "it is damaged (a token or sealed state that does not parse or verify)" },
        { EPROTONOSUPPORT, "it was written by a newer sealvol; update this one" },
        { EMEDIUMTYPE, "it is not a LUKS2 volume" },
        { ENOMSG, "it is a LUKS2 volume without a sealvol token" },
        { EXDEV, "its token names another volume (a header copied from elsewhere)" },
        { EREMOTE, "it is bound to another server's VMK" },
        { EPERM, "the key or password does not open it" },
        { EDOM, "a block of the recovery password is not a multiple of 11 (a typo)" },
        { ERANGE, "a block of the recovery password is above 720885 (a typo)" },
        { EEXIST, "the device holds data (a file system, a partition table or a LUKS header); sealvol "
                  "provisions only empty devices: wipe it first (wipefs -a) if its data is not needed, or "
                  "encrypt it in place (provision --in-place)" },
        { EUCLEAN, "its LUKS header is too damaged to load; wipe it (wipefs -a) to provision the device again" },
        { EBADE, "it was tampered with (a token whose MAC fails, or a keyslot sealvol does not write): nothing of "
                 "it was used or changed" },
        { EKEYREJECTED, "the certificate may not serve as the DRA ([DRA] TrustAnchor=, PinnedFingerprint=)" },
        { ENOENT, "there is no such volume or device" },
        { ENOMEDIUM, "its device is not there (a disk missing or not yet seen)" },
        { EBUSY, "another change to it is under way; try again when it is done" },
        { ENOKEY, "it has no such protector" },
        { ENODATA, "the daemon keeps no copy of it (rotate it to get one)" },
        { ENOPKG, "the daemon does not hold the VMK (the TPM refused it): recover first" },
        { E2BIG, "there are too many" },
        { ECOMM, "a required escrow target failed; see `sealvolctl status` and the journal" },
        { ENOSPC, "there is not enough space on the device" },
        { ENOTRECOVERABLE, "its in-place encryption has encrypted data already: it can only go on "
                           "(`sealvolctl encryption resume`)" },
};

const char *bus_error_explain(int error) {
        error = error < 0 ? -error : error;
        for (size_t i = 0; i < ELEMENTSOF(explanations); i++)
                if (explanations[i].code == error)
                        return explanations[i].text;
        return NULL;
}

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
                return sd_bus_error_setf(error, name, "%s: %s.", buf, bus_error_explain(r) ?: strerror(r < 0 ? -r : r));
        return sd_bus_error_set_errnof(error, r, "%s: %s.", buf, strerror(r < 0 ? -r : r));
}
