/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-tpm-records.c: the two records a TPM replacement reads before it writes, the record of
 * earlier replacements (tpm-replacements.json) and the note of the TPM the VMK was sealed to
 * (tpm-identity.json), as a crash, a restored backup or an editor may leave them.
 *
 * The input: one flags byte (bit 0: there is no record, bit 1: there is no note), two bytes of the
 * record's length, the record, the note. Whatever they hold, the replacement's entry is in the
 * record written, last, and what the record held before stays unless it was no record.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "tpm-identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The SRK name the VMK was pinned to: the one seeds and dictionaries write as "000b0101...". */
static const TPM2B_NAME old_srk = {
        .size = 34,
        .name = { 0x00, 0x0b, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
                  0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
                  0x01, 0x01, 0x01, 0x01, 0x01, 0x01 },
};

static size_t replacements(json_object *doc) {
        json_object *list = NULL;

        if (!json_object_object_get_ex(doc, "replacements", &list) || !json_object_is_type(list, json_type_array))
                return SIZE_MAX;
        return json_object_array_length(list);
}

/* A file's content as read_file_full() gives it: NUL-terminated, NULs inside kept. */
static char *file_text(const uint8_t *data, size_t size) {
        char *p = malloc(size + 1);

        if (p) {
                memcpy(p, data, size);
                p[size] = '\0';
        }
        return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(json_object_putp) json_object *entry = NULL, *before = NULL, *after = NULL;
        _cleanup_free_ char *record = NULL, *note = NULL, *text = NULL;
        json_object *list, *last;
        size_t n_record, n_note, n_before = SIZE_MAX;
        int r;

        log_set_max_level(LOG_CRIT);
        if (size < 3)
                return 0;
        n_record = (size_t) data[1] << 8 | data[2];
        if (n_record > size - 3)
                n_record = size - 3;
        n_note = size - 3 - n_record;
        if (!(data[0] & 1) && !(record = file_text(data + 3, n_record)))
                return 0;
        if (!(data[0] & 2) && !(note = file_text(data + 3 + n_record, n_note)))
                return 0;
        if (record && json_parse_object(record, n_record, 8, &before) >= 0)
                n_before = replacements(before);

        entry = json_object_new_object();
        if (!entry || json_add_string(entry, "credential", "dra-key") < 0)
                return 0;
        r = tpm_replacements_append(record, n_record, note, n_note, &old_srk, entry, &text);
        if (r == -ENOMEM)
                return 0;
        /* Started again exactly when there was a record and it was none. */
        if (r < 0 || r != (record && n_before == SIZE_MAX))
                abort();
        if (json_parse_object(text, strlen(text), 10, &after) < 0 ||
            !json_object_object_get_ex(after, "replacements", &list))
                abort();
        /* The entry is the last one; an earlier record's entries all stay. */
        last = json_object_array_get_idx(list, json_object_array_length(list) - 1);
        if (!last || !streq_ptr(json_get_string(last, "credential"), "dra-key"))
                abort();
        if (replacements(after) != (n_before == SIZE_MAX ? 1 : n_before + 1))
                abort();
        return 0;
}
