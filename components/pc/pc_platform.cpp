// One domain's PC (pc_platform.hpp).
#include "nestor/pc/pc_platform.hpp"

#include "nestor/lib/mul_div.hpp"
#include "nestor/lib/placement_new.hpp"

namespace nestor::pc {
namespace {

u64 earlier(u64 a, u64 b) { return a < b ? a : b; }

}  // namespace

PcPlatform::PcPlatform(const GuestClock& host_clock, u32 vcpus, const MsrConfig& msr_config, u64 tsc_start)
    : tsc_(host_clock, tsc_start),
      vcpus_(vcpus == 0          ? 1
             : vcpus > kMaxVcpus ? kMaxVcpus
                                 : vcpus),
      io_apic_(apic_bus_, kIoApicId),
      irqs_(pic_, io_apic_),
      pit_(tsc_, irqs_),
      rtc_(tsc_, irqs_),
      serial_(kConsolePort, kConsoleIrq, irqs_),
      pm_(tsc_, irqs_, kPmBase) {
    apic_bus_.set_wakeup(*this);
    for (u32 i = 0; i < vcpus_; ++i) {
        apics_[i] =
            new (&apic_storage_[i * sizeof(LocalApic)]) LocalApic(i, tsc_, apic_bus_, io_apic_, kApicTimerKhz, i == 0);
        msrs_[i] = new (&msr_storage_[i * sizeof(MsrFile)]) MsrFile(msr_config, tsc_);
        apics_[i]->set_min_period(mul_div(tsc_.tsc_khz(), kMinTimerPeriodUs, 1000));
        apic_bus_.add(*apics_[i]);
    }
}

Status<virt::BusError> PcPlatform::attach(virt::DeviceBus& bus) {
    bus_ = &bus;
    // The console and the local APIC first: theirs are the busiest ranges.
    NESTOR_TRY_STATUS(bus.add_ports(kConsolePort, Serial16550A::kPorts, serial_));
    NESTOR_TRY_STATUS(bus.add_mmio(kLocalApicAddress, LocalApic::kMmioSize, local_));
    NESTOR_TRY_STATUS(bus.add_msrs(LocalApic::kMsrX2apicFirst, LocalApic::kMsrX2apicCount, local_));
    NESTOR_TRY_STATUS(bus.add_msrs(LocalApic::kMsrApicBase, 1, local_));
    NESTOR_TRY_STATUS(bus.add_msrs(LocalApic::kMsrTscDeadline, 1, local_));
    for (const MsrRange& range : MsrFile::kRanges) NESTOR_TRY_STATUS(bus.add_msrs(range.first, range.count, local_));
    NESTOR_TRY_STATUS(bus.add_mmio(IoApic::kBase, IoApic::kSize, io_apic_));
    NESTOR_TRY_STATUS(bus.add_ports(Pic8259Pair::kMasterBase, Pic8259Pair::kRangePorts, pic_));
    NESTOR_TRY_STATUS(bus.add_ports(Pic8259Pair::kSlaveBase, Pic8259Pair::kRangePorts, pic_));
    NESTOR_TRY_STATUS(bus.add_ports(Pic8259Pair::kElcrBase, Pic8259Pair::kRangePorts, pic_));
    NESTOR_TRY_STATUS(bus.add_ports(Pit8254::kFirstPort, Pit8254::kPortCount, pit_));
    NESTOR_TRY_STATUS(bus.add_ports(Pit8254::kSystemControlPort, 1, pit_));
    NESTOR_TRY_STATUS(bus.add_ports(CmosRtc::kIndexPort, CmosRtc::kPortCount, rtc_));
    constexpr u16 kSinglePorts[] = {SystemPorts::kKeyboardDataPort, SystemPorts::kKeyboardStatusPort,
                                    SystemPorts::kPostCodePort, SystemPorts::kSystemControlPortA};
    for (u16 port : kSinglePorts) NESTOR_TRY_STATUS(bus.add_ports(port, 1, system_ports_));
    NESTOR_TRY_STATUS(bus.add_ports(SystemPorts::kPciConfigPorts, SystemPorts::kPciConfigPortCount, system_ports_));
    return bus.add_ports(kPmBase, kPmPortCount, pm_);
}

u64 PcPlatform::next_deadline() const {
    u64 deadline = earlier(pit_.deadline(), rtc_.deadline());
    for (u32 i = 0; i < vcpus_; ++i) deadline = earlier(deadline, apics_[i]->deadline());
    return deadline;
}

void PcPlatform::advance(u64 now) {
    pit_.advance(now);
    rtc_.advance(now);
    for (u32 i = 0; i < vcpus_; ++i) apics_[i]->advance(now);
}

PendingEvent PcPlatform::pending(u32 index) {
    LocalApic& apic = *apics_[index];
    if (apic.nmi_pending()) return {PendingEvent::Kind::nmi, 2};
    if (int vector = apic.pending_vector(); vector >= 0)
        return {PendingEvent::Kind::interrupt, static_cast<u8>(vector)};
    // The 8259A reaches the bootstrap processor through its LINT0 (virtual wire), as on a PC.
    if (index != 0 || !apic.accepts_pic_interrupts()) return {};
    if (latched_pic_vector_ < 0 && pic_.interrupt_output()) latched_pic_vector_ = pic_.acknowledge();
    if (latched_pic_vector_ < 0) return {};
    return {PendingEvent::Kind::interrupt, static_cast<u8>(latched_pic_vector_)};
}

void PcPlatform::taken(u32 index, const PendingEvent& event) {
    LocalApic& apic = *apics_[index];
    if (event.kind == PendingEvent::Kind::nmi) {
        (void)apic.take_nmi();
        return;
    }
    if (event.kind != PendingEvent::Kind::interrupt) return;
    if (index == 0 && latched_pic_vector_ == event.vector) {
        latched_pic_vector_ = -1;
        return;
    }
    apic.acknowledge(event.vector);
}

bool PcPlatform::wakes(u32 index) {
    advance(tsc_.now());
    return pending(index).kind != PendingEvent::Kind::none;
}

bool PcPlatform::press_nmi_button() {
    if (!pit_.io_channel_check() || rtc_.nmi_masked()) return false;
    for (u32 i = 0; i < vcpus_; ++i)
        if (apics_[i]->raise_lint1()) interrupt_arrived(i);
    return true;
}

void PcPlatform::interrupt_arrived(usize apic_index) {
    if (apic_index != current_) woken_ |= 1u << apic_index;
}

bool PcPlatform::take_woken_others() {
    bool any = woken_ != 0;
    woken_ = 0;
    return any;
}

bool PcPlatform::apic_msr(u32 index) const {
    return index == LocalApic::kMsrApicBase || index == LocalApic::kMsrTscDeadline ||
           index - LocalApic::kMsrX2apicFirst < LocalApic::kMsrX2apicCount;
}

LocalApic& PcPlatform::current_apic() {
    LocalApic& apic = *apics_[current_];
    if (cr8_) apic.sync_cr8(*cr8_);
    return apic;
}

virt::DeviceOutcome PcPlatform::LocalDevices::mmio_read(u64 address, u8 size, u64& value, virt::DeviceHost& host) {
    return pc_.current_apic().mmio_read(address, size, value, host);
}

// A write may have set TPR: the vCPU's CR8 follows.
virt::DeviceOutcome PcPlatform::LocalDevices::mmio_write(u64 address, u8 size, u64 value, virt::DeviceHost& host) {
    LocalApic& apic = pc_.current_apic();
    virt::DeviceOutcome outcome = apic.mmio_write(address, size, value, host);
    if (pc_.cr8_) *pc_.cr8_ = apic.cr8();
    return outcome;
}

virt::DeviceOutcome PcPlatform::LocalDevices::msr_read(u32 index, u64& value, virt::DeviceHost& host) {
    if (pc_.apic_msr(index)) return pc_.current_apic().msr_read(index, value, host);
    return pc_.msrs_[pc_.current_]->msr_read(index, value, host);
}

virt::DeviceOutcome PcPlatform::LocalDevices::msr_write(u32 index, u64 value, virt::DeviceHost& host) {
    if (!pc_.apic_msr(index)) return pc_.msrs_[pc_.current_]->msr_write(index, value, host);
    LocalApic& apic = pc_.current_apic();
    virt::DeviceOutcome outcome = apic.msr_write(index, value, host);
    if (pc_.cr8_) *pc_.cr8_ = apic.cr8();
    if (index == LocalApic::kMsrApicBase) pc_.claim_apic_page(apic.base());
    return outcome;
}

// A local APIC's page reaches it only through the bus: a page moved where no range claims it
// becomes another range of the local devices, which hand each access to the selected vCPU's
// APIC (one whose page is elsewhere reads all-ones and ignores writes, as an empty bus would).
// The ranges stay once added: a guest moving its pages about uses up the bus's room, and then
// its APIC's new page is nothing's. A page over guest RAM is RAM's (its accesses never exit),
// and a page over the I/O APIC's is the I/O APIC's.
void PcPlatform::claim_apic_page(u64 base) {
    if (bus_ && !bus_->mmio_range(base)) (void)bus_->add_mmio(base, LocalApic::kMmioSize, local_);
}

}  // namespace nestor::pc
