/* The binary boot manifest: what `nestor-manifest pack` writes and the kernel reads from a
 * multiboot module. Plain C, little-endian, every field at its natural alignment with no implicit
 * padding, so the same structs describe the image on the host and in the kernel.
 *
 * Layout: one header, then domain_count fixed-size domain records at domain_offset, then
 * component_count component records (the boot modules of loadable kernel components, each with
 * its size and SHA-256, which the kernel checks before loading it). Strings are
 * inline, fixed-size and NUL-padded: every byte after the terminating NUL is zero, as is every
 * reserved field and every unused array entry, so one manifest has exactly one image. The
 * checksum is CRC-32 (IEEE, reflected, as in zlib) over the whole image with the checksum field
 * taken as zero. The kernel validates all of this (nestor/manifest_reader.hpp) before using it.
 * The text format and the tool are documented in docs/manifest.md. */
#ifndef NESTOR_MANIFEST_H
#define NESTOR_MANIFEST_H

#include <stdint.h>

#include "nestor/abi/domain.h" /* NESTOR_DOMAIN_FLAG_*, NESTOR_CPUID_POLICY_*, vCPU limit */

#define NESTOR_MANIFEST_MAGIC 0x464e4d4eu /* "NMNF" as little-endian bytes */
#define NESTOR_MANIFEST_FORMAT_VERSION 1u /* the binary layout below */
#define NESTOR_MANIFEST_TEXT_VERSION 1u   /* `version = 1` in the text format */

/* Limits shared by the text tool and the kernel reader. */
#define NESTOR_MANIFEST_MAX_DOMAINS 16u
#define NESTOR_MANIFEST_MAX_COMPONENTS 4u
#define NESTOR_MANIFEST_COMPONENT_NESTED "nested" /* the only component so far: nested virtualization */
#define NESTOR_MANIFEST_NAME_SIZE 32u             /* domain and image names: 1..31 chars + NUL */
#define NESTOR_MANIFEST_CMDLINE_SIZE 256u         /* guest command line: 0..255 chars + NUL */
#define NESTOR_MANIFEST_MODULE_CMDLINE_SIZE 128u  /* extra module command line: 0..127 chars + NUL */
#define NESTOR_MANIFEST_MAX_IOPORT_RANGES 8u
#define NESTOR_MANIFEST_MAX_SIGNALS 8u
#define NESTOR_MANIFEST_MAX_MODULES 4u
#define NESTOR_MANIFEST_MAX_VCPUS NESTOR_DOMAIN_MAX_VCPUS /* the sanitiser's limit */
#define NESTOR_MANIFEST_MEMORY_ALIGN 4096u                /* a page, as the sanitiser wants */
#define NESTOR_MANIFEST_MIN_MEMORY (1ull << 20)           /* 1 MiB: room for a real-mode guest */
#define NESTOR_MANIFEST_MAX_MEMORY (4ull << 30)           /* 4 GiB per domain */

/* The machine a domain sees (docs/platform.md). */
#define NESTOR_MANIFEST_PLATFORM_BARE 0u /* a console port and an exit port: SDK guests */
#define NESTOR_MANIFEST_PLATFORM_PC 1u   /* a PC: local APICs, I/O APIC, PIC, PIT, RTC, 16550A, ACPI */
#define NESTOR_MANIFEST_PLATFORM_COUNT 2u

/* A domain's console: its text goes to the host's console, prefixed with its name; the one domain
 * (at most) whose console is INPUT also gets what is typed on the host's console, at its PC's
 * serial port. */
#define NESTOR_MANIFEST_CONSOLE_OUTPUT 0u
#define NESTOR_MANIFEST_CONSOLE_INPUT 1u
#define NESTOR_MANIFEST_CONSOLE_COUNT 2u

/* What a reset of a domain's machine does (a triple fault; on the PC platform also the keyboard
 * controller, port 0xCF9 and the ACPI reset register): STOP ends the domain with the reset status;
 * RESTART boots it again from its images, as at boot, at most NESTOR_MANIFEST_MAX_RESTARTS times. */
#define NESTOR_MANIFEST_ON_RESET_STOP 0u
#define NESTOR_MANIFEST_ON_RESET_RESTART 1u
#define NESTOR_MANIFEST_ON_RESET_COUNT 2u
#define NESTOR_MANIFEST_MAX_RESTARTS 16u /* then the next reset stops it: a guest never loops for ever */

/* 32 bytes at offset 0. */
struct nestor_manifest_header {
    uint32_t magic;              /* NESTOR_MANIFEST_MAGIC */
    uint16_t format_version;     /* NESTOR_MANIFEST_FORMAT_VERSION */
    uint16_t header_size;        /* sizeof(struct nestor_manifest_header) */
    uint32_t total_size;         /* bytes in the whole image, header included */
    uint32_t checksum;           /* CRC-32 of total_size bytes, this field taken as zero */
    uint32_t domain_count;       /* 1..NESTOR_MANIFEST_MAX_DOMAINS */
    uint32_t domain_offset;      /* of the first record, from the image start; >= header_size */
    uint32_t domain_record_size; /* sizeof(struct nestor_manifest_domain) */
    uint16_t component_count;    /* 0..NESTOR_MANIFEST_MAX_COMPONENTS records after the domains */
    uint16_t reserved;           /* zero */
};

/* A loadable component: the boot module of that name holds it; the kernel loads it only when the
 * module has exactly this size and SHA-256 (FIPS 180-4). 72 bytes. */
struct nestor_manifest_component {
    char name[NESTOR_MANIFEST_NAME_SIZE]; /* a known component: NESTOR_MANIFEST_COMPONENT_* */
    uint8_t sha256[32];
    uint64_t size; /* bytes, not zero */
};

/* Raw I/O ports first..last (inclusive) granted to the domain as an IoPortRange capability. */
struct nestor_manifest_ioport_range {
    uint16_t first;
    uint16_t last;
};

/* An extra multiboot module handed to the guest: the image module's name and its command line. */
struct nestor_manifest_module {
    char image[NESTOR_MANIFEST_NAME_SIZE];
    char cmdline[NESTOR_MANIFEST_MODULE_CMDLINE_SIZE];
};

/* 1032 bytes per domain. */
struct nestor_manifest_domain {
    char name[NESTOR_MANIFEST_NAME_SIZE];       /* [a-z0-9_-], unique in the manifest */
    char image[NESTOR_MANIFEST_NAME_SIZE];      /* the guest image: a multiboot module of this name */
    uint64_t memory_bytes;                      /* page multiple, MIN_MEMORY..MAX_MEMORY */
    uint32_t vcpus;                             /* 1..NESTOR_MANIFEST_MAX_VCPUS */
    uint32_t flags;                             /* NESTOR_DOMAIN_FLAG_* */
    uint32_t cpuid_policy;                      /* NESTOR_CPUID_POLICY_* */
    uint16_t ioport_range_count;                /* 0..NESTOR_MANIFEST_MAX_IOPORT_RANGES */
    uint16_t signal_count;                      /* 0..NESTOR_MANIFEST_MAX_SIGNALS */
    uint16_t module_count;                      /* 0..NESTOR_MANIFEST_MAX_MODULES */
    uint16_t platform;                          /* NESTOR_MANIFEST_PLATFORM_* */
    uint16_t console;                           /* NESTOR_MANIFEST_CONSOLE_*; INPUT needs the PC platform */
    uint8_t on_reset;                           /* NESTOR_MANIFEST_ON_RESET_* */
    uint8_t reserved1;                          /* zero */
    char cmdline[NESTOR_MANIFEST_CMDLINE_SIZE]; /* printable ASCII */
    struct nestor_manifest_ioport_range ioport_ranges[NESTOR_MANIFEST_MAX_IOPORT_RANGES];
    /* Domains this one may signal (a notification capability each), by record index: in range,
     * not itself, no repeats. */
    uint8_t signals[NESTOR_MANIFEST_MAX_SIGNALS];
    struct nestor_manifest_module modules[NESTOR_MANIFEST_MAX_MODULES];
};

/* Ports the kernel itself drives, never granted to a domain: the legacy PIC it keeps masked, and
 * the debug-exit and Bochs shutdown ports, which would end the whole machine. */
static inline int nestor_manifest_ports_are_kernel_owned(uint32_t first, uint32_t last) {
    return (first <= 0x21 && 0x20 <= last) || (first <= 0xA1 && 0xA0 <= last) || (first <= 0xF7 && 0xF4 <= last) ||
           (first <= 0x8900 && 0x8900 <= last);
}

#ifdef __cplusplus
#define NESTOR_MANIFEST_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define NESTOR_MANIFEST_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
NESTOR_MANIFEST_STATIC_ASSERT(sizeof(struct nestor_manifest_header) == 32, "manifest header layout");
NESTOR_MANIFEST_STATIC_ASSERT(sizeof(struct nestor_manifest_module) == 160, "manifest module layout");
NESTOR_MANIFEST_STATIC_ASSERT(sizeof(struct nestor_manifest_component) == 72, "manifest component layout");
NESTOR_MANIFEST_STATIC_ASSERT(sizeof(struct nestor_manifest_domain) == 1032, "manifest domain layout");
#undef NESTOR_MANIFEST_STATIC_ASSERT

#endif
