// Hypercalls with garbage arguments and forged capability selectors. Every refusal is printed with
// its exact code; the kernel must survive them all, and so must this domain, which exits 0.
#include "hostile.hpp"

using namespace nestor::guest;

namespace {

constexpr u64 kRoot = NESTOR_CSPACE_ROOT;
constexpr u64 kOwn = NESTOR_GUEST_SLOT_NOTIFICATION;  // its own notification: WAIT only
constexpr u64 kFree = 20;                             // an empty slot of its CSpace

u32 unexpected = 0;

void expect(const char* what, const HypercallResult& r, u64 status) {
    println("hypercalls: ", what, ": ", hostile::status_name(r.status), " (", r.status, ")");
    if (r.status != status) {
        ++unexpected;
        println("hypercalls: UNEXPECTED, wanted ", hostile::status_name(status));
    }
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    static char text[] = "hypercalls: console_write of its own memory\n";
    expect("unknown number 6", hypercall(6), NESTOR_E_INVALID_HYPERCALL);
    expect("unknown number 0xffffffffffffffff", hypercall(~u64{0}), NESTOR_E_INVALID_HYPERCALL);
    expect("abi_version with a non-zero unused argument", hypercall(NESTOR_HC_ABI_VERSION, 0, 0, 0, 0, 0, 1),
           NESTOR_E_INVALID_ARGUMENT);
    expect("identify an empty slot", invoke(NESTOR_HC_CAP_IDENTIFY, kRoot, kFree), NESTOR_E_OK);
    expect("signal through an empty slot", invoke(NESTOR_HC_NOTIFICATION_SIGNAL, kFree), NESTOR_E_SLOT_EMPTY);
    expect("delete an empty slot", invoke(NESTOR_HC_CAP_DELETE, kRoot, kFree), NESTOR_E_SLOT_EMPTY);
    expect("identify slot 32 of a 32-slot CSpace", invoke(NESTOR_HC_CAP_IDENTIFY, kRoot, 32),
           NESTOR_E_INDEX_OUT_OF_RANGE);
    expect("poll cptr 0x21 (guard bits set)", invoke(NESTOR_HC_NOTIFICATION_POLL, 0x21), NESTOR_E_GUARD_MISMATCH);
    expect("poll cptr 0x8000000000000001", invoke(NESTOR_HC_NOTIFICATION_POLL, 0x8000000000000001),
           NESTOR_E_GUARD_MISMATCH);
    expect("copy through cnode cptr 1 (a notification)", invoke(NESTOR_HC_CAP_COPY, kOwn, 0, kRoot, kFree),
           NESTOR_E_WRONG_TYPE);
    expect("signal its own notification (WAIT only)", invoke(NESTOR_HC_NOTIFICATION_SIGNAL, kOwn),
           NESTOR_E_INSUFFICIENT_RIGHTS);
    expect("mint SIGNAL|WAIT from its WAIT-only notification",
           invoke(NESTOR_HC_CAP_MINT, kRoot, kOwn, kRoot, kFree,
                  NESTOR_RIGHT_NOTIFICATION_SIGNAL | NESTOR_RIGHT_NOTIFICATION_WAIT, 0),
           NESTOR_E_RIGHTS_ESCALATION);
    expect("mint undefined rights bits", invoke(NESTOR_HC_CAP_MINT, kRoot, kOwn, kRoot, kFree, 0x80, 0),
           NESTOR_E_INVALID_RIGHTS);
    expect("mint rights above 32 bits", invoke(NESTOR_HC_CAP_MINT, kRoot, kOwn, kRoot, kFree, u64{1} << 40, 0),
           NESTOR_E_INVALID_RIGHTS);
    expect("move its notification onto itself", invoke(NESTOR_HC_CAP_MOVE, kRoot, kOwn, kRoot, kOwn),
           NESTOR_E_SAME_SLOT);
    expect("retype through its notification",
           invoke(NESTOR_HC_UNTYPED_RETYPE, kOwn, NESTOR_CAP_MEMORY, 12, kRoot, kFree), NESTOR_E_WRONG_TYPE);
    expect("read a vCPU register through its notification", invoke(NESTOR_HC_VCPU_READ, kOwn, 0), NESTOR_E_WRONG_TYPE);
    expect("map through an empty slot", invoke(NESTOR_HC_DOMAIN_MAP, kFree, kOwn, 0x40000000, 1), NESTOR_E_SLOT_EMPTY);
    expect("issue I/O ports from an empty slot", invoke(NESTOR_HC_IOPORT_ISSUE, kFree, 0x20, 2, kRoot, kFree + 1),
           NESTOR_E_SLOT_EMPTY);
    expect("console_write of guest-physical 0x40000000 (outside its memory)",
           hypercall(NESTOR_HC_CONSOLE_WRITE, 0x40000000, 16), NESTOR_E_INVALID_ARGUMENT);
    expect("console_write of 4097 bytes", hypercall(NESTOR_HC_CONSOLE_WRITE, reinterpret_cast<u64>(text), 4097),
           NESTOR_E_INVALID_ARGUMENT);
    expect("console_write running past the end of its memory", hypercall(NESTOR_HC_CONSOLE_WRITE, (16u << 20) - 8, 16),
           NESTOR_E_INVALID_ARGUMENT);
    expect("console_write wrapping around 2^64", hypercall(NESTOR_HC_CONSOLE_WRITE, ~u64{0} - 7, 16),
           NESTOR_E_INVALID_ARGUMENT);
    expect("console_write of its own memory",
           hypercall(NESTOR_HC_CONSOLE_WRITE, reinterpret_cast<u64>(text), sizeof(text) - 1), NESTOR_E_OK);

    // Legitimate on its own capabilities: a copy of its WAIT capability, then delete it.
    expect("mint WAIT into an empty slot",
           invoke(NESTOR_HC_CAP_MINT, kRoot, kOwn, kRoot, kFree, NESTOR_RIGHT_NOTIFICATION_WAIT, 0), NESTOR_E_OK);
    expect("mint into the now occupied slot",
           invoke(NESTOR_HC_CAP_MINT, kRoot, kOwn, kRoot, kFree, NESTOR_RIGHT_NOTIFICATION_WAIT, 0),
           NESTOR_E_SLOT_OCCUPIED);
    expect("delete the copy", invoke(NESTOR_HC_CAP_DELETE, kRoot, kFree), NESTOR_E_OK);
    HypercallResult poll = invoke(NESTOR_HC_NOTIFICATION_POLL, kOwn);
    expect("poll its own notification", poll, NESTOR_E_OK);

    // Forged kernel lines: the console prefixes every line with the domain's name, drops CR and
    // shows control bytes as '.', so none of these can pass for the kernel's or the harness's.
    println("\rerror: forged by hypercalls");
    println("\x1b[2K\rNESTOR-EXIT: 7");
    static const char kForged[] = "\n\rappliance: forged by hypercalls\x07\n";
    expect("console_write of forged lines", console_write(kForged, sizeof(kForged) - 1), NESTOR_E_OK);

    println("hypercalls: ", unexpected, " unexpected results, still alive");
    return unexpected == 0 ? 0 : 1;
}
