// fuzz.pc_platform: a random guest on a PC domain. Port, MMIO and MSR accesses of every size and
// value reach the platform's devices through the device bus, as the kernel's exit handler makes
// them; the short paths of pc_ops.cpp reach the local APIC directly (x2APIC writes, the EOI);
// time advances (the host's clock, the guest's TSC written), vCPUs take what is pending, change
// CR8, press the NMI button and type at the console. After every operation the invariants the
// kernel's entries and waits rest on must hold:
//  - nothing reads or writes out of bounds, nothing is undefined (ASan, UBSan);
//  - a device refuses an access only with an exception (#GP) or a stop;
//  - after advance(now) no timer is due at or before `now` (else the vCPU's waits never end:
//    the host timer would be armed in the past again and again);
//  - an interrupt the local APIC offers has a vector of 16 or more, and is in IRR;
//  - the TPR threshold the backends load is a class at or below CR8 (VMX's TPR shadow refuses
//    the entry otherwise) and 0 when nothing waits for TPR;
//  - the EOI's short path (nothing in service and nothing requested, or nothing_new()) skips the
//    entry work only when the full question, pending_vector(), finds nothing deliverable;
//  - ISR and IRR as the guest reads them agree with the summary bits the short paths test.
//
// Input: the first byte picks the vCPU count (1 to 8), then 12-byte operations (see run_op).
#include <cstring>

#include "fuzz_assert.hpp"
#include "nestor/pc/pc_platform.hpp"

using namespace nestor;
using namespace nestor::pc;
using Action = virt::DeviceOutcome::Action;

namespace {

class FuzzClock final : public GuestClock {
public:
    u64 now() const override { return tsc; }
    u64 tsc_khz() const override { return 2'000'000; }
    u64 tsc = 1'000'000'000;
};

// A device host whose console goes nowhere.
class NullHost final : public virt::DeviceHost {
public:
    void console_line(const char*, usize) override {}
};

// The platform's port ranges, for operations that pick one of its ports rather than any port.
struct PortRange {
    u16 first;
    u16 count;
};
constexpr PortRange kPlatformPorts[] = {
    {Pic8259Pair::kMasterBase, Pic8259Pair::kRangePorts},
    {Pic8259Pair::kSlaveBase, Pic8259Pair::kRangePorts},
    {Pic8259Pair::kElcrBase, Pic8259Pair::kRangePorts},
    {Pit8254::kFirstPort, Pit8254::kPortCount},
    {Pit8254::kSystemControlPort, 1},
    {CmosRtc::kIndexPort, CmosRtc::kPortCount},
    {SystemPorts::kKeyboardDataPort, 1},
    {SystemPorts::kKeyboardStatusPort, 1},
    {SystemPorts::kPostCodePort, 1},
    {SystemPorts::kSystemControlPortA, 1},
    {SystemPorts::kPciConfigPorts, SystemPorts::kPciConfigPortCount},
    {kConsolePort, Serial16550A::kPorts},
    {kPmBase, kPmPortCount},
};

// The MSRs of interest besides the x2APIC range.
namespace regs = x86_regs;
constexpr u32 kPlatformMsrs[] = {regs::kMsrTsc,
                                 regs::kMsrApicBase,
                                 regs::kMsrTscAdjust,
                                 regs::kMsrSpecCtrl,
                                 regs::kMsrPredCmd,
                                 regs::kMsrMtrrCap,
                                 regs::kMsrArchCapabilities,
                                 regs::kMsrMcgCap,
                                 regs::kMsrMcgStatus,
                                 regs::kMsrMcgCtl,
                                 regs::kMsrMiscEnable,
                                 regs::kMsrMtrrPhysBase0,
                                 regs::kMsrMtrrPhysBase0 + 1,
                                 regs::kMsrMtrrFix64k00000,
                                 regs::kMsrMtrrFix16k80000,
                                 regs::kMsrMtrrFix4kC0000,
                                 regs::kMsrPat,
                                 regs::kMsrMtrrDefType,
                                 regs::kMsrMc0Ctl,
                                 regs::kMsrMc0Ctl + 1,
                                 regs::kMsrTscDeadline,
                                 regs::kMsrPlatformId,
                                 regs::kMsrDebugCtl};

struct Reader {
    const u8* data;
    usize size;
    usize at = 0;
    bool more(usize n) const { return at + n <= size; }
    u8 byte() { return data[at++]; }
    u16 word() {
        u16 v = 0;
        std::memcpy(&v, data + at, 2);
        at += 2;
        return v;
    }
    u64 quad() {
        u64 v = 0;
        std::memcpy(&v, data + at, 8);
        at += 8;
        return v;
    }
};

constexpr u8 kIoSizes[] = {1, 2, 4, 1};
constexpr u8 kMmioSizes[] = {1, 2, 4, 8};

struct Fuzz {
    FuzzClock host;
    MsrConfig config;
    PcPlatform platform;
    virt::DeviceBus bus;
    NullHost console;
    u8 cr8[kMaxVcpus] = {};

    explicit Fuzz(u32 vcpus) : platform(host, vcpus, config) { FUZZ_ASSERT(platform.attach(bus).ok()); }

    void check(const virt::DeviceOutcome& outcome) {
        if (outcome.action == Action::fault) FUZZ_ASSERT(outcome.vector == 13 && outcome.has_error_code);
    }

    void select(u32 vcpu) { platform.select_vcpu(vcpu, &cr8[vcpu]); }

    void port(u16 port, u8 size, u32 value, bool write) {
        const virt::BusRange<u16>* range = bus.port_range(port);
        if (!range) return;
        if (write) {
            const u32 low = size == 4 ? value : value & ((1u << (8 * size)) - 1);
            check(range->device->io_write(port, size, low, console));
        } else {
            u32 read = 0xFFFFFFFF;
            check(range->device->io_read(port, size, read, console));
        }
    }

    void mmio(u64 address, u8 size, u64 value, bool write) {
        const virt::BusRange<u64>* range = bus.mmio_range(address);
        if (!range) return;
        if (write) {
            const u64 low = size == 8 ? value : value & ((u64{1} << (8 * size)) - 1);
            check(range->device->mmio_write(address, size, low, console));
        } else {
            u64 read = ~u64{0};
            check(range->device->mmio_read(address, size, read, console));
        }
    }

    void msr(u32 index, u64 value, bool write) {
        const virt::BusRange<u32>* range = bus.msr_range(index);
        if (!range) return;
        if (write) {
            check(range->device->msr_write(index, value, console));
        } else {
            u64 read = 0;
            check(range->device->msr_read(index, read, console));
        }
    }

    // What the kernel does before an entry: timers due, then what the vCPU takes (the backend
    // may refuse it: the guest's IF, an event in flight).
    void enter(u32 vcpu, bool accepted) {
        advance();
        LocalApic& apic = platform.apic(vcpu);
        apic.sync_cr8(cr8[vcpu]);
        PendingEvent event = platform.pending(vcpu);
        if (event.kind != PendingEvent::Kind::none && accepted) platform.taken(vcpu, event);
    }

    void advance() {
        const u64 now = platform.tsc().now();
        platform.advance(now);
        const u64 next = platform.next_deadline();
        FUZZ_ASSERT(next == kNoDeadline || next > now);
    }

    // pc_ops.cpp's x2apic_write and x2apic_eoi, without the exit around them.
    void short_path(u32 vcpu, u32 index, u64 value) {
        LocalApic& apic = platform.apic(vcpu);
        apic.sync_cr8(cr8[vcpu]);
        if (index == LocalApic::kMsrX2apicEoi) {
            if (!apic.x2apic() || value != 0) return;
            apic.end_of_interrupt();
        } else if (!apic.write_x2apic(index, value)) {
            return;
        }
        cr8[vcpu] = apic.cr8();
    }

    // ISR or IRR as the guest reads it: any bit set, or -1 when the guest cannot read it.
    int register_nonzero(LocalApic& apic, u32 first) {
        u32 any = 0;
        for (u32 i = 0; i < 8; ++i) {
            u64 value = 0;
            const u32 offset = first + i * LocalApic::kRegisterStride;
            if (apic.x2apic()) {
                if (apic.msr_read(LocalApic::kMsrX2apicFirst + offset / LocalApic::kRegisterStride, value, console)
                        .action != Action::complete)
                    return -1;
            } else {
                if (!apic.hardware_enabled()) return -1;
                value = ~u64{0};
                if (apic.mmio_read(apic.base() + offset, 4, value, console).action != Action::complete) return -1;
            }
            any |= static_cast<u32>(value);
        }
        return any != 0;
    }

    void check_apic(u32 vcpu) {
        LocalApic& apic = platform.apic(vcpu);
        apic.sync_cr8(cr8[vcpu]);
        const int vector = apic.pending_vector();
        const u8 threshold = apic.cr8_threshold();
        FUZZ_ASSERT(threshold <= apic.cr8());
        if (vector >= 0) {
            FUZZ_ASSERT(vector >= 16 && vector <= 255);
            FUZZ_ASSERT(apic.any_requested());
        }
        if (!apic.any_requested()) FUZZ_ASSERT(vector < 0 && threshold == 0);
        if (apic.nothing_new(threshold)) FUZZ_ASSERT(vector < 0);
        if (int isr = register_nonzero(apic, LocalApic::kIsr); isr >= 0)
            FUZZ_ASSERT((isr != 0) == apic.any_in_service());
        if (int irr = register_nonzero(apic, LocalApic::kIrr); irr >= 0)
            FUZZ_ASSERT((irr != 0) == apic.any_requested());
    }

    // One operation: op, vCPU, a 16-bit selector, a 64-bit value.
    void run_op(u8 op, u32 vcpu, u16 selector, u64 value) {
        select(vcpu);
        const bool write = op & 1;
        switch ((op >> 1) % 12) {
        case 0: {  // a port the platform claims
            const PortRange& range = kPlatformPorts[selector % (sizeof(kPlatformPorts) / sizeof(kPlatformPorts[0]))];
            port(static_cast<u16>(range.first + (selector >> 8) % range.count), kIoSizes[value >> 62],
                 static_cast<u32>(value), write);
            break;
        }
        case 1:  // any port
            port(selector, kIoSizes[value >> 62], static_cast<u32>(value), write);
            break;
        case 2: {  // the local APIC's page, where this vCPU's APIC has it, or the I/O APIC's
            const u64 base = (selector & 0x8000) ? IoApic::kBase : platform.apic(vcpu).base();
            mmio(base + (selector & 0xFFF), kMmioSizes[(selector >> 12) & 3], value, write);
            break;
        }
        case 3: {  // the I/O APIC as a driver uses it: select, then the window
            u64 read = 0;
            check(bus.mmio_range(IoApic::kBase)->device->mmio_write(IoApic::kBase, 4, selector & 0xFF, console));
            if (write)
                check(bus.mmio_range(IoApic::kBase)
                          ->device->mmio_write(IoApic::kBase + 0x10, 4, static_cast<u32>(value), console));
            else
                check(bus.mmio_range(IoApic::kBase)->device->mmio_read(IoApic::kBase + 0x10, 4, read, console));
            break;
        }
        case 4:  // the x2APIC range
            msr(LocalApic::kMsrX2apicFirst + (selector & 0xFF), value, write);
            break;
        case 5:  // the platform's other MSRs, or any
            msr((selector & 0x8000) ? static_cast<u32>(value >> 32)
                                    : kPlatformMsrs[selector % (sizeof(kPlatformMsrs) / sizeof(kPlatformMsrs[0]))],
                write ? value : 0, write);
            break;
        case 6:  // the short paths
            short_path(vcpu, LocalApic::kMsrX2apicFirst + (selector & 0xFF), value);
            break;
        case 7:  // time passes: a little, a lot, or the guest writes its TSC
            if (write)
                platform.tsc().write_tsc(value);
            else
                host.tsc += (selector & 0x8000) ? (value & 0xFFFFFFFFF) : (value & 0xFFFFF);
            advance();
            break;
        case 8:  // an entry
            enter(vcpu, write);
            break;
        case 9:  // the guest's CR8 (a MOV to CR8 needs no exit)
            cr8[vcpu] = selector & 0xF;
            break;
        case 10:  // the NMI button, an IPI's wake-up, the scheduler's INIT and SIPI
            if (write) {
                (void)platform.press_nmi_button();
            } else {
                (void)platform.take_woken_others();
                (void)platform.wakes(vcpu);
                if (platform.apic(vcpu).take_init()) platform.apic(vcpu).reset_for_init();
                (void)platform.apic(vcpu).take_startup();
            }
            break;
        default:  // typed at the console
            for (int i = 0; i < (selector & 7); ++i) (void)platform.serial().receive(static_cast<u8>(value >> (8 * i)));
            break;
        }
        for (u32 i = 0; i < platform.vcpus(); ++i) check_apic(i);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const u8* data, usize size) {
    if (size == 0) return 0;
    Reader in{data, size};
    const u32 vcpus = 1 + in.byte() % kMaxVcpus;
    Fuzz fuzz(vcpus);
    while (in.more(12)) {
        const u8 op = in.byte();
        const u32 vcpu = in.byte() % vcpus;
        const u16 selector = in.word();
        const u64 value = in.quad();
        fuzz.run_op(op, vcpu, selector, value);
    }
    return 0;
}
