/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-bus.h: what the bus files share (sealvold-bus.c): argument checks, the errors every
 * handler maps the same way, the polkit-and-busy check, and the server recovery password's record as
 * an operation sees it. Only the bus files include it: the rest of the daemon knows the bus through
 * sealvold.h's manager_bus_setup() and volume_bus_emit_*().
 */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <systemd/sd-bus.h>

#include "sealvold.h"

#define FLAGS_NONE UINT64_C(0)

/* The error of a failed change to v (NULL: the server), naming what failed. */
int volume_error(sd_bus_error *error, int r, const ManagedVolume *v, const char *what);
/* Every flags argument is reserved for now: anything set is a caller from the future, refused. */
int check_flags(uint64_t flags, sd_bus_error *error);
int check_flags_known(uint64_t flags, uint64_t known, sd_bus_error *error);
/* The flags argument of a method that takes nothing else, checked. */
int read_flags(sd_bus_message *message, sd_bus_error *error);
/* The answer of a call that an operation or a pass ends: error is sent, and freed. */
void reply_error(sd_bus_message *request, sd_bus_error *error);
/* The password and flags of a method that takes a recovery password: too long to be one is refused
 * before polkit is asked. */
int read_password_and_flags(sd_bus_message *message, const char **ret_password, sd_bus_error *error);
/* The fingerprint of a DRA certificate, as sealvol shows it; NULL when there is none to show. */
char *cert_fingerprint_string(X509 *cert);
char *dra_fingerprint_in_force(Manager *m);
/* Busy at once, naming the operation under way, when a manager-wide one runs (all: any operation but
 * a background one). */
int manager_check_idle(Manager *m, bool all, sd_bus_error *error);
/* polkit_check() then manager_check_idle(): 1 to go on, 0 when polkit will call again, or -errno. */
int polkit_check_alone(Manager *m, sd_bus_message *message, const char *action, bool all, sd_bus_error *error);
/* For a call that needs the VMK, once polkit said yes to action: 0 when the daemon holds it; else the unseal
 * starts off the loop ("prepare-vmk", never making a VMK), or is joined when under way, and 1 is
 * returned (the handler returns it: answered later): the call runs again from the read queue when it
 * is done, or is answered with why it failed. -errno (error set) when it cannot start. */
int bus_need_vmk(Manager *m, sd_bus_message *message, const char *action, sd_bus_error *error);
/* polkit_check() then bus_need_vmk(): 1 to go on with the VMK held, 0 when the call runs again later
 * (polkit's answer, or the unseal), or -errno. */
int polkit_check_vmk(Manager *m, sd_bus_message *message, const char *action, sd_bus_error *error);
/* The DRA private key a caller passed as a descriptor. */
int read_passed_dra_key(int fd, EVP_PKEY **ret, sd_bus_error *error);
/* The answer to a recovery password that did not parse: which block, and what is wrong with it. */
int recovery_typo_error(sd_bus_error *error, int r, unsigned block);

/* The server recovery password's record as an operation sees it: what it unwraps, never the daemon's. */
typedef struct ServerWrap {
        bool have;
        uint8_t wrapped_vmk[SERVER_RECOVERY_WRAPPED_VMK_SIZE];
        Guid key_id, vmk_id;
        uint8_t *vmk; /* secure memory: what the password opened */
} ServerWrap;
void server_wrap_snapshot(Manager *m, ServerWrap *ret);
/* On a worker: the server recovery password's KDF. */
int server_wrap_open(ServerWrap *w, const char *password, unsigned *ret_bad_block);

/* The records of an escrow property, with the reason of each target's last failure. */
int append_escrow_records(sd_bus_message *reply, const EscrowRecord *records, size_t n,
                          char *const errors[static _ESCROW_TARGET_MAX]);

/* The objects (sealvold-manager-bus.c, sealvold-volume-bus.c). */
int manager_bus_add(Manager *m);
int volume_bus_add(Manager *m);
