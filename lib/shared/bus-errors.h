/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-errors.h: the org.sealvol1.Error.* names and the errno each stands for.
 *
 * One table, registered with sd_bus_error_add_map() by the daemon and by the CLI, so an error the
 * daemon returns turns back into the same errno in the CLI, which prints a precise message and
 * exits with the code of its class (docs/bus-api.md, "Errors").
 */
#pragma once

#include <systemd/sd-bus.h>

#include "macro.h"

/* Every sealvol error name starts so. */
#define SEALVOL_ERROR_PREFIX "org.sealvol1.Error."
#define BUS_ERROR_NO_TPM "org.sealvol1.Error.NoTPM"
#define BUS_ERROR_OTHER_TPM "org.sealvol1.Error.OtherTPM"
#define BUS_ERROR_UNTRUSTED_TPM "org.sealvol1.Error.UntrustedTPM"
#define BUS_ERROR_PCR_MISMATCH "org.sealvol1.Error.PCRMismatch"
#define BUS_ERROR_TPM_LOCKOUT "org.sealvol1.Error.TPMLockout"
#define BUS_ERROR_DAMAGED "org.sealvol1.Error.Damaged"
#define BUS_ERROR_NEWER_FORMAT "org.sealvol1.Error.NewerFormat"
#define BUS_ERROR_NOT_LUKS2 "org.sealvol1.Error.NotLUKS2"
#define BUS_ERROR_NOT_SEALVOL "org.sealvol1.Error.NotSealvolVolume"
#define BUS_ERROR_TOKEN_FROM_OTHER_VOLUME "org.sealvol1.Error.TokenFromOtherVolume"
#define BUS_ERROR_OTHER_SERVER "org.sealvol1.Error.OtherServer"
#define BUS_ERROR_WRONG_KEY "org.sealvol1.Error.WrongKey"
#define BUS_ERROR_RECOVERY_PASSWORD_TYPO "org.sealvol1.Error.RecoveryPasswordTypo"
#define BUS_ERROR_RECOVERY_PASSWORD_RANGE "org.sealvol1.Error.RecoveryPasswordOutOfRange"
#define BUS_ERROR_DEVICE_NOT_EMPTY "org.sealvol1.Error.DeviceNotEmpty"
#define BUS_ERROR_DAMAGED_HEADER "org.sealvol1.Error.DamagedHeader"
#define BUS_ERROR_TAMPERED "org.sealvol1.Error.Tampered"
#define BUS_ERROR_CERTIFICATE_REJECTED "org.sealvol1.Error.CertificateRejected"
#define BUS_ERROR_NO_SUCH_VOLUME "org.sealvol1.Error.NoSuchVolume"
#define BUS_ERROR_DEVICE_MISSING "org.sealvol1.Error.DeviceMissing"
#define BUS_ERROR_BUSY "org.sealvol1.Error.Busy"
#define BUS_ERROR_NO_PROTECTOR "org.sealvol1.Error.NoSuchProtector"
#define BUS_ERROR_NO_COPY "org.sealvol1.Error.NoCopy"
#define BUS_ERROR_NO_VMK "org.sealvol1.Error.NoVMK"
#define BUS_ERROR_TOO_MANY "org.sealvol1.Error.TooMany"
#define BUS_ERROR_ESCROW_FAILED "org.sealvol1.Error.EscrowFailed"
#define BUS_ERROR_UNSUPPORTED_CONTENT "org.sealvol1.Error.UnsupportedContent"
#define BUS_ERROR_NO_SPACE "org.sealvol1.Error.NoSpace"
#define BUS_ERROR_DATA_ENCRYPTED "org.sealvol1.Error.DataEncrypted"

/* ProvisionInPlace's flags: set the volume up (header, protectors, escrow) and stay paused before
 * the first byte is encrypted; ResumeEncryption goes on, CancelEncryption undoes it. */
#define SEALVOL_IN_PLACE_PAUSED (UINT64_C(1) << 0)

extern const sd_bus_error_map sealvol_bus_errors[];

/* The error name for an errno returned by sealvol's library, or NULL (then sd-bus's generic
 * mapping applies). */
const char *bus_error_name_from_errno(int error);

/* One sentence for the person who reads the error: what is wrong and what to do about it. NULL for
 * an errno without a sealvol error name. */
const char *bus_error_explain(int error);

/* Sets error from a negative errno with a message (followed by bus_error_explain()'s sentence, or
 * strerror()); returns the negative errno, for
 *         return bus_error_set(error, r, "Failed to unlock %s", uuid);
 */
int bus_error_set(sd_bus_error *error, int r, const char *format, ...) _printf_(3, 4);
