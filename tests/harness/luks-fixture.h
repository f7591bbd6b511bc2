/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * luks-fixture.h: LUKS2 image files for tests, and key checks that need no device-mapper.
 *
 * Images are sparse files formatted with sealvol's production parameters (LUKS2, aes-xts-plain64,
 * 512-bit volume key) but with the cheapest PBKDF2, so a test opens them in microseconds.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define LUKS_IMAGE_SIZE_DEFAULT (UINT64_C(32) * 1024 * 1024)

/* A new sparse (empty) image file of size bytes in dir; fails if it exists. */
int sparse_image_new(const char *dir, const char *name, uint64_t size, char **ret_path);

int luks_image_new(const char *dir, const char *name, uint64_t size, const void *passphrase, size_t len,
                   char **ret_path);
/* Verifies a passphrase against every keyslot without mapping anything: the keyslot number, or
 * -EPERM when no keyslot opens with it. */
int luks_image_test_passphrase(const char *path, const void *passphrase, size_t len);

/* An image of size_mb MiB holding an ext4 file system of fs_mb MiB with files_mb files of 1 MiB of
 * random data each (their sources stay in "<path>.src/fileN" for comparison). */
int ext4_image_new(const char *dir, const char *name, unsigned size_mb, unsigned fs_mb, unsigned files_mb,
                   char **ret_path);

/* The first size bytes of the volume's data, decrypted without device-mapper: the volume key from the
 * keyslot the passphrase opens, then AES-256-XTS with plain64 IVs (aes-xts-plain64, 512-byte sectors)
 * over the data segment. -EBUSY while a re-encryption is unfinished. */
int luks_image_decrypt(const char *path, const void *passphrase, size_t len, uint64_t size, uint8_t **ret);

/* size bytes of path at offset, malloc'd. */
int read_file_range(const char *path, uint64_t offset, uint64_t size, uint8_t **ret);
