// One domain's PC: every device model of the platform, wired as on a PC (links.hpp), on the
// domain's device bus. The kernel's glue (pc_ops.cpp) drives it at three points: before a vCPU
// enters (timers that are due, the interrupt it should take), while a vCPU waits (what wakes it,
// when the next timer is due), and, through the bus, at each exit that touches a device.
// Pure logic: the host tests build one on a fake clock. Every model follows the domain's TSC
// (GuestTsc), which starts at 0 with the platform.
#pragma once

#include "nestor/pc/apic_router.hpp"
#include "nestor/pc/acpi_pm.hpp"
#include "nestor/pc/acpi_tables.hpp"
#include "nestor/pc/cmos_rtc.hpp"
#include "nestor/pc/io_apic.hpp"
#include "nestor/pc/irq_router.hpp"
#include "nestor/pc/local_apic.hpp"
#include "nestor/pc/msr_file.hpp"
#include "nestor/pc/pic8259.hpp"
#include "nestor/pc/pit8254.hpp"
#include "nestor/pc/serial16550a.hpp"
#include "nestor/pc/system_ports.hpp"
#include "nestor/virt/ram_layout.hpp"

namespace nestor::pc {

// The platform's fixed places that the ACPI tables (acpi_tables.hpp) do not already name.
inline constexpr u32 kMaxVcpus = 8;            // local APICs a PC has room for
inline constexpr u64 kApicTimerKhz = 1000000;  // the local APIC timer's input clock: 1 GHz, as KVM's
inline constexpr u8 kIoApicId = 0;             // as QEMU's: I/O APIC IDs are not local APIC IDs
inline constexpr u16 kConsolePort = 0x3F8;     // COM1
inline constexpr u8 kConsoleIrq = 4;
inline constexpr u16 kPmBase = 0x600;  // the ACPI PM1a event/control blocks and PM timer, as on QEMU's PIIX4
// A PC's RAM below 4 GiB (the rest is above 4 GiB, virt/ram_layout.hpp) ends below the I/O
// APIC's page and the local APIC's: they are not memory.
static_assert(virt::kPcLowRamEnd <= kIoApicAddress, "a PC's RAM below 4 GiB ends below its APICs");

// What a vCPU should take next.
struct PendingEvent {
    enum class Kind : u8 { none, interrupt, nmi };
    Kind kind = Kind::none;
    u8 vector = 0;
};

class PcPlatform final : private VcpuWakeup {
public:
    // `host_clock` is the host's TSC; the guest's starts from it at `tsc_start` (tsc()): 0 for a
    // new PC, the TSC of the PC before for one built again at a machine reset.
    PcPlatform(const GuestClock& host_clock, u32 vcpus, const MsrConfig& msr_config, u64 tsc_start = 0);
    PcPlatform(const PcPlatform&) = delete;
    PcPlatform& operator=(const PcPlatform&) = delete;

    // Registers every device on `bus` (once). The platform keeps `bus`: a local APIC moved
    // elsewhere through IA32_APIC_BASE has its page added to it.
    Status<virt::BusError> attach(virt::DeviceBus& bus);
    // Whose local devices (local APIC, MSRs) the bus's next accesses reach. `cr8`: where that
    // vCPU's CR8 is kept while it runs (virt::VcpuState::cr8), which the guest changes without an
    // exit: its local APIC takes it before each access and gives it back after (nullptr: no CPU
    // holds one, as in a test), and lowest-priority arbitration reads it there from then on,
    // while other vCPUs run.
    void select_vcpu(u32 index, u8* cr8 = nullptr) {
        current_ = index < vcpus_ ? index : 0;
        cr8_ = cr8;
        if (cr8 != nullptr) apics_[current_]->set_cr8_source(cr8);
    }

    // The guest timestamp of the earliest armed timer (kNoDeadline: none).
    u64 next_deadline() const;
    // Raises what every timer has due at `now`.
    void advance(u64 now);

    // What vCPU `index` should take next; `taken` once the backend accepted it for injection.
    PendingEvent pending(u32 index);
    void taken(u32 index, const PendingEvent& event);
    // Whether anything pending would wake vCPU `index` from HLT.
    bool wakes(u32 index);
    // The NMI button (as on a server's front panel): IOCHK# on the ISA bus, which port 0x61 shows
    // (bit 6) as the NMI's reason. Unless port 0x61 disables IOCHK NMIs (bit 3) or the CMOS index
    // port masks NMIs (bit 7), it raises the platform's NMI line, wired to every local APIC's
    // LINT1 as the MADT's Local APIC NMI entry says. True: the NMI line was raised.
    bool press_nmi_button();
    // Whether an interrupt reached another vCPU than the selected one since the last call (an
    // IPI: the sender's slice should end so that the receiver runs soon).
    bool take_woken_others();
    bool woken_others() const { return woken_ != 0; }

    u32 vcpus() const { return vcpus_; }
    // The domain's TSC: the clock of every model, and the offset of every vCPU's backend.
    GuestTsc& tsc() { return tsc_; }
    const GuestTsc& tsc() const { return tsc_; }
    LocalApic& apic(u32 index) { return *apics_[index]; }
    Serial16550A& serial() { return serial_; }
    CmosRtc& rtc() { return rtc_; }

private:
    // The bus reaches the selected vCPU's local APIC and MSRs through this.
    class LocalDevices final : public virt::Device {
    public:
        explicit LocalDevices(PcPlatform& pc) : pc_(pc) {}
        virt::DeviceOutcome mmio_read(u64 address, u8 size, u64& value, virt::DeviceHost& host) override;
        virt::DeviceOutcome mmio_write(u64 address, u8 size, u64 value, virt::DeviceHost& host) override;
        virt::DeviceOutcome msr_read(u32 index, u64& value, virt::DeviceHost& host) override;
        virt::DeviceOutcome msr_write(u32 index, u64 value, virt::DeviceHost& host) override;

    private:
        PcPlatform& pc_;
    };

    void interrupt_arrived(usize apic_index) override;
    // The selected local APIC, with the CR8 its vCPU holds now (select_vcpu).
    LocalApic& current_apic();
    bool apic_msr(u32 index) const;
    void claim_apic_page(u64 base);

    GuestTsc tsc_;
    u32 vcpus_;
    u32 current_ = 0;
    u8* cr8_ = nullptr;  // the selected vCPU's CR8
    u32 woken_ = 0;      // bit n: vCPU n got an interrupt while another was selected
    IoApic io_apic_;
    Pic8259Pair pic_;
    IrqRouter irqs_;
    ApicRouter apic_bus_;
    Pit8254 pit_;
    CmosRtc rtc_;
    SystemPorts system_ports_;
    Serial16550A serial_;
    AcpiPm pm_;
    LocalDevices local_{*this};
    // The PIC's vector once its INTA cycle ran and before the vCPU could take it.
    int latched_pic_vector_ = -1;
    virt::DeviceBus* bus_ = nullptr;
    alignas(LocalApic) u8 apic_storage_[sizeof(LocalApic) * kMaxVcpus];
    alignas(MsrFile) u8 msr_storage_[sizeof(MsrFile) * kMaxVcpus];
    LocalApic* apics_[kMaxVcpus] = {};
    MsrFile* msrs_[kMaxVcpus] = {};
};

}  // namespace nestor::pc
