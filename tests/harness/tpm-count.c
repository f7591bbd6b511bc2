/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm-count.c: count TPM commands in a capture of tpm2-tss's pcap TCTI (see tpm-count.h). */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "tpm-count.h"

/* pcapng (draft-tuexen-opsawg-pcapng), as tpm2-tss's tcti-pcap-builder.c writes it. */
#define PCAPNG_BLOCK_SHB UINT32_C(0x0A0D0D0A)
#define PCAPNG_BLOCK_IDB UINT32_C(0x00000001)
#define PCAPNG_BLOCK_EPB UINT32_C(0x00000006)
#define PCAPNG_BYTE_ORDER_MAGIC UINT32_C(0x1A2B3C4D)
#define PCAPNG_SHB_SIZE_MIN 28u
#define PCAPNG_IDB_SIZE_MIN 20u
#define PCAPNG_EPB_HEADER_SIZE 28u /* type, length, interface, 2x timestamp, 2x packet length */
#define PCAPNG_LINKTYPE_IPV4 228u
#define IPV4_HEADER_SIZE_MIN 20u
#define IPV4_PROTOCOL_TCP 6u
#define TCP_HEADER_SIZE_MIN 20u
/* The writer puts the TPM at this port, the one Wireshark's TPM 2.0 dissector knows. */
#define PCAP_TPM_PORT 2321u
/* tag, commandSize / responseSize, commandCode / responseCode (TPM 2.0 Part 1, 18.2) */
#define TPM2_HEADER_SIZE 10u

/* The block structure is written in the writer's byte order: ours, since the capture is made here. */
static uint32_t host32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return v;
}

static uint16_t host16(const uint8_t *p) {
        uint16_t v;

        memcpy(&v, p, sizeof(v));
        return v;
}

/* Packet headers and TPM structures are big-endian. */
static uint16_t be16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

#define CC(name) { TPM2_CC_##name, #name }
static const struct {
        uint32_t code;
        const char *name;
} command_names[] = {
        CC(NV_UndefineSpaceSpecial), CC(EvictControl), CC(HierarchyControl), CC(NV_UndefineSpace),
        CC(ChangeEPS), CC(ChangePPS), CC(Clear), CC(ClearControl),
        CC(ClockSet), CC(HierarchyChangeAuth), CC(NV_DefineSpace), CC(PCR_Allocate),
        CC(PCR_SetAuthPolicy), CC(PP_Commands), CC(SetPrimaryPolicy), CC(FieldUpgradeStart),
        CC(ClockRateAdjust), CC(CreatePrimary), CC(NV_GlobalWriteLock), CC(GetCommandAuditDigest),
        CC(NV_Increment), CC(NV_SetBits), CC(NV_Extend), CC(NV_Write),
        CC(NV_WriteLock), CC(DictionaryAttackLockReset), CC(DictionaryAttackParameters), CC(NV_ChangeAuth),
        CC(PCR_Event), CC(PCR_Reset), CC(SequenceComplete), CC(SetAlgorithmSet),
        CC(SetCommandCodeAuditStatus), CC(FieldUpgradeData), CC(IncrementalSelfTest), CC(SelfTest),
        CC(Startup), CC(Shutdown), CC(StirRandom), CC(ActivateCredential),
        CC(Certify), CC(PolicyNV), CC(CertifyCreation), CC(Duplicate),
        CC(GetTime), CC(GetSessionAuditDigest), CC(NV_Read), CC(NV_ReadLock),
        CC(ObjectChangeAuth), CC(PolicySecret), CC(Rewrap), CC(Create),
        CC(ECDH_ZGen), CC(HMAC), CC(Import), CC(Load),
        CC(Quote), CC(RSA_Decrypt), CC(HMAC_Start), CC(SequenceUpdate),
        CC(Sign), CC(Unseal), CC(PolicySigned), CC(ContextLoad),
        CC(ContextSave), CC(ECDH_KeyGen), CC(EncryptDecrypt), CC(FlushContext),
        CC(LoadExternal), CC(MakeCredential), CC(NV_ReadPublic), CC(PolicyAuthorize),
        CC(PolicyAuthValue), CC(PolicyCommandCode), CC(PolicyCounterTimer), CC(PolicyCpHash),
        CC(PolicyLocality), CC(PolicyNameHash), CC(PolicyOR), CC(PolicyTicket),
        CC(ReadPublic), CC(RSA_Encrypt), CC(StartAuthSession), CC(VerifySignature),
        CC(ECC_Parameters), CC(FirmwareRead), CC(GetCapability), CC(GetRandom),
        CC(GetTestResult), CC(Hash), CC(PCR_Read), CC(PolicyPCR),
        CC(PolicyRestart), CC(ReadClock), CC(PCR_Extend), CC(PCR_SetAuthValue),
        CC(NV_Certify), CC(EventSequenceComplete), CC(HashSequenceStart), CC(PolicyPhysicalPresence),
        CC(PolicyDuplicationSelect), CC(PolicyGetDigest), CC(TestParms), CC(Commit),
        CC(PolicyPassword), CC(ZGen_2Phase), CC(EC_Ephemeral), CC(PolicyNvWritten),
        CC(PolicyTemplate), CC(CreateLoaded), CC(PolicyAuthorizeNV), CC(EncryptDecrypt2),
        CC(AC_GetCapability), CC(AC_Send), CC(Policy_AC_SendSelect), CC(CertifyX509),
        CC(ACT_SetTimeout),
};
#undef CC

const char *tpm_command_name(uint32_t code) {
        for (size_t i = 0; i < ELEMENTSOF(command_names); i++)
                if (command_names[i].code == code)
                        return command_names[i].name;
        return NULL;
}

int tpm_count_context_new(const char *tcti, const char *capture, Tpm2Context **ret) {
        _cleanup_free_ char *pcap = NULL;
        int r;

        if (!tcti)
                tcti = tpm2_tcti_select(NULL);
        /* The TCTI appends: start from nothing, so the capture is this context's alone. */
        if (unlink(capture) < 0 && errno != ENOENT)
                return -errno;
        if (asprintf(&pcap, "pcap:%s", tcti) < 0)
                return -ENOMEM;
        if (setenv(TPM_COUNT_ENV, capture, /* overwrite= */ 1) < 0)
                return -errno;
        r = tpm2_context_new(pcap, ret);
        (void) unsetenv(TPM_COUNT_ENV);
        return r;
}

static int count_command(TpmCount *c, uint32_t code) {
        size_t i;

        for (i = 0; i < c->n_codes; i++)
                if (c->codes[i].code == code)
                        break;
        if (i == c->n_codes) {
                if (c->n_codes >= TPM_COUNT_CODES_MAX)
                        return -E2BIG;
                c->codes[c->n_codes++] = (TpmCountEntry) { .code = code };
        }
        c->codes[i].count++;
        c->commands++;
        return 0;
}

/* One captured packet: IPv4, TCP, then a whole TPM command or response (the TCTI writes each
 * transmit and each complete receive as one packet). */
static int count_packet(TpmCount *c, const uint8_t *p, size_t n) {
        size_t ihl, doff;
        uint16_t sport, dport, tag;

        if (n < IPV4_HEADER_SIZE_MIN || p[0] >> 4 != 4 || p[9] != IPV4_PROTOCOL_TCP)
                return -EBADMSG;
        ihl = (size_t) (p[0] & 0x0f) * 4;
        if (ihl < IPV4_HEADER_SIZE_MIN || n - ihl < TCP_HEADER_SIZE_MIN)
                return -EBADMSG;
        p += ihl;
        n -= ihl;
        sport = be16(p);
        dport = be16(p + 2);
        doff = (size_t) (p[12] >> 4) * 4;
        if (doff < TCP_HEADER_SIZE_MIN || doff > n)
                return -EBADMSG;
        p += doff;
        n -= doff;
        if (n < TPM2_HEADER_SIZE)
                return -EBADMSG;

        if (dport == PCAP_TPM_PORT) {
                /* A command: its tag says whether sessions follow, its size is the whole of it. */
                tag = be16(p);
                if (!IN_SET(tag, TPM2_ST_NO_SESSIONS, TPM2_ST_SESSIONS) || be32(p + 2) != n)
                        return -EBADMSG;
                return count_command(c, be32(p + 6));
        }
        if (sport == PCAP_TPM_PORT) {
                c->responses++;
                if (be32(p + 6) != TPM2_RC_SUCCESS)
                        c->failed++;
                return 0;
        }
        return -EBADMSG;
}

int tpm_count_read(const char *capture, TpmCount *ret) {
        _cleanup_free_ char *data = NULL;
        TpmCount c = {};
        bool have_interface = false;
        size_t size, off = 0;
        int r;

        r = read_file_full(capture, TPM_COUNT_CAPTURE_SIZE_MAX, &data, &size);
        if (r < 0)
                return r;

        while (off < size) {
                const uint8_t *b = (const uint8_t *) data + off;
                uint32_t type, len;

                if (size - off < 12)
                        return -EBADMSG;
                type = host32(b);
                len = host32(b + 4);
                /* Every block: type, total length, body, total length again; a multiple of 4. */
                if (len < 12 || len % 4 != 0 || len > size - off || host32(b + len - 4) != len)
                        return -EBADMSG;

                switch (type) {
                case PCAPNG_BLOCK_SHB:
                        if (len < PCAPNG_SHB_SIZE_MIN || host32(b + 8) != PCAPNG_BYTE_ORDER_MAGIC)
                                return -EBADMSG;
                        c.sections++;
                        have_interface = false;
                        break;
                case PCAPNG_BLOCK_IDB:
                        if (len < PCAPNG_IDB_SIZE_MIN || host16(b + 8) != PCAPNG_LINKTYPE_IPV4)
                                return -EBADMSG;
                        have_interface = true;
                        break;
                case PCAPNG_BLOCK_EPB: {
                        uint32_t captured;

                        if (!have_interface || len < PCAPNG_EPB_HEADER_SIZE + 4)
                                return -EBADMSG;
                        captured = host32(b + 20);
                        if (captured > len - PCAPNG_EPB_HEADER_SIZE - 4)
                                return -EBADMSG;
                        r = count_packet(&c, b + PCAPNG_EPB_HEADER_SIZE, captured);
                        if (r < 0)
                                return r;
                        break;
                }
                default:
                        /* Other blocks carry no packets. */
                        break;
                }
                off += len;
        }
        if (c.sections == 0)
                return -EBADMSG;

        *ret = c;
        return 0;
}

unsigned tpm_count_of(const TpmCount *c, uint32_t code) {
        for (size_t i = 0; i < c->n_codes; i++)
                if (c->codes[i].code == code)
                        return c->codes[i].count;
        return 0;
}

char *tpm_count_format(const TpmCount *c, char *buf, size_t size) {
        size_t n = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';
        for (size_t i = 0; i < c->n_codes && n < size; i++) {
                const char *name = tpm_command_name(c->codes[i].code), *sep = i > 0 ? ", " : "";
                int k;

                if (name)
                        k = snprintf(buf + n, size - n, "%s%s %u", sep, name, c->codes[i].count);
                else
                        k = snprintf(buf + n, size - n, "%s0x%03x %u", sep, (unsigned) c->codes[i].code,
                                     c->codes[i].count);
                if (k < 0)
                        break;
                n += (size_t) k;
        }
        return buf;
}
