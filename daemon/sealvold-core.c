/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-core.c: this server's volumes as the daemon tracks them, and the registry (sealvold-core.h).
 * It reports through the hooks (ManagerHooks) and calls nothing above it.
 */

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "sealvold-core.h"

void escrow_errors_done(char *errors[static _ESCROW_TARGET_MAX]) {
        for (size_t t = 0; t < _ESCROW_TARGET_MAX; t++)
                errors[t] = mfree(errors[t]);
}

static const char *const volume_state_table[_VOLUME_STATE_MAX] = {
        [VOLUME_LOCKED] = "locked",
        [VOLUME_UNLOCKED] = "unlocked",
        [VOLUME_VERIFIED] = "verified",
        [VOLUME_RECOVERY_REQUIRED] = "recovery-required",
        [VOLUME_UNAVAILABLE] = "unavailable",
        [VOLUME_BUSY] = "busy",
        [VOLUME_TAMPERED] = "tampered",
};

const char *volume_state_to_string(VolumeState s) {
        return s < _VOLUME_STATE_MAX ? volume_state_table[s] : NULL;
}

ManagedVolume *managed_volume_free(ManagedVolume *v) {
        if (!v)
                return NULL;
        free(v->device);
        free(v->object_path);
        free(v->mapped_name);
        free(v->state_reason);
        escrow_errors_done(v->escrow_error);
        free(v->encryption);
        free(v);
        return NULL;
}

void volume_set_state(ManagedVolume *v, VolumeState state, const char *reason) {
        char *copy = reason ? strdup(reason) : NULL;

        v->state = state;
        free(v->state_reason);
        v->state_reason = copy;
        if (v->manager && v->manager->hooks.volume_changed)
                v->manager->hooks.volume_changed(v);
}

int manager_refresh_volume(ManagedVolume *v, Volume **ret) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        int r;

        if (v->job || v->operation)
                return -EBUSY;

        r = volume_load(v->device, &vol);
        if (r == -ENOENT || r == -ENOTBLK)
                r = -ENOMEDIUM;
        if (r < 0) {
                volume_set_state(v, VOLUME_UNAVAILABLE, strerror(-r));
                return r;
        }
        if (!streq(vol->token.volume_uuid, v->uuid)) {
                volume_set_state(v, VOLUME_UNAVAILABLE, "the device now holds another volume");
                return -EXDEV;
        }
        managed_volume_update(v, vol);
        if (ret)
                *ret = TAKE_PTR(vol);
        return 0;
}

void managed_volume_update(ManagedVolume *v, const Volume *vol) {
        v->vmk_id = vol->token.vmk_id;
        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++) {
                v->has[i] = vol->token.has[i];
                v->key_ids[i] = vol->token.protectors[i].key_id;
        }
        memcpy(v->dra_fingerprint, vol->token.protectors[PROTECTOR_DRA].dra_fingerprint, sizeof(v->dra_fingerprint));
        v->n_escrow = vol->token.protectors[PROTECTOR_RECOVERY].n_escrow;
        memcpy(v->escrow, vol->token.protectors[PROTECTOR_RECOVERY].escrow, sizeof(v->escrow));
        if (v->state == VOLUME_UNAVAILABLE)
                volume_set_state(v, VOLUME_LOCKED, NULL);
}

int managed_volume_new(Manager *m, const char *uuid, const char *device, ManagedVolume **ret) {
        _cleanup_(managed_volume_freep) ManagedVolume *v = calloc(1, sizeof(ManagedVolume));
        int r;

        if (!v)
                return -ENOMEM;
        if (strlen(uuid) >= sizeof(v->uuid))
                return -EINVAL;
        v->manager = m;
        snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
        v->device = strdup(device);
        if (!v->device || asprintf(&v->mapped_name, "sealvol-%s", uuid) < 0)
                return -ENOMEM;
        r = sd_bus_path_encode(SEALVOL_VOLUME_PATH_PREFIX, uuid, &v->object_path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int manager_add_volume(Manager *m, ManagedVolume *v) {
        ManagedVolume **a;

        if (m->n_volumes >= MANAGED_VOLUMES_MAX)
                return -E2BIG;
        a = realloc(m->volumes, (m->n_volumes + 1) * sizeof(*a));
        if (!a)
                return -ENOMEM;
        m->volumes = a;
        m->volumes[m->n_volumes++] = v;
        if (m->hooks.volume_added)
                m->hooks.volume_added(v);
        return 0;
}

ManagedVolume *manager_find_volume(Manager *m, const char *uuid) {
        for (size_t i = 0; i < m->n_volumes; i++)
                if (streq(m->volumes[i]->uuid, uuid))
                        return m->volumes[i];
        return NULL;
}

ManagedVolume *manager_find_volume_by_path(Manager *m, const char *path) {
        for (size_t i = 0; i < m->n_volumes; i++)
                if (streq(m->volumes[i]->object_path, path))
                        return m->volumes[i];
        return NULL;
}

int manager_register_volume(Manager *m, const char *uuid, const char *device, ManagedVolume **ret) {
        _cleanup_(managed_volume_freep) ManagedVolume *v = NULL;
        int r;

        r = managed_volume_new(m, uuid, device, &v);
        if (r < 0)
                return r;
        r = registry_add(m, uuid, device);
        if (r < 0)
                return r;
        r = manager_add_volume(m, v);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int registry_add(Manager *m, const char *uuid, const char *device) {
        _cleanup_free_ char *path = NULL, *content = NULL;

        if (mkdir(m->volumes_dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (asprintf(&path, "%s/%s", m->volumes_dir, uuid) < 0 || asprintf(&content, "%s\n", device) < 0)
                return -ENOMEM;
        return write_file_atomic(path, content, strlen(content), 0600);
}

void manager_forget_volume(Manager *m, ManagedVolume *v) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s", m->volumes_dir, v->uuid) >= 0)
                (void) unlink(path);
        if (m->hooks.volume_removed)
                m->hooks.volume_removed(v);
        if (m->hooks.volume_forgotten)
                m->hooks.volume_forgotten(m, v);
        for (size_t i = 0; i < m->n_volumes; i++)
                if (m->volumes[i] == v) {
                        memmove(m->volumes + i, m->volumes + i + 1, (m->n_volumes - i - 1) * sizeof(*m->volumes));
                        m->n_volumes--;
                        break;
                }
        managed_volume_free(v);
}

const uint8_t *manager_vmk_for(Manager *m, const Guid *id) {
        if (m->vmk && guid_equal(id, &m->vmk_id))
                return m->vmk;
        if (m->previous_vmk && guid_equal(id, &m->previous_vmk_id))
                return m->previous_vmk;
        return NULL;
}
