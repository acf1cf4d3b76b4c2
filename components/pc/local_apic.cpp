// One vCPU's local APIC (local_apic.hpp).
#include "nestor/pc/local_apic.hpp"

#include "nestor/lib/mul_div.hpp"

namespace nestor::pc {
namespace {

using u128 = unsigned __int128;
using virt::DeviceOutcome;

constexpr u32 kVectorBankSize = 0x80;  // ISR, TMR and IRR: eight registers 16 bytes apart
constexpr u32 kX2apicBroadcast = 0xFFFFFFFF;
constexpr u32 kXapicBroadcast = 0xFF;
constexpr u32 kFlatModel = 0xF0000000;
constexpr u32 kClusterModel = 0x00000000;
constexpr u64 kBaseWritable =
    LocalApic::kBaseAddress | LocalApic::kBaseBsp | LocalApic::kBaseX2apic | LocalApic::kBaseEnable;

// What a write keeps of each LVT entry, in LvtIndex order: delivery status and remote IRR are
// read-only, the timer has no delivery mode, LINT0/1 alone have polarity and trigger mode.
constexpr u32 kLvtWritable[] = {
    LocalApic::kLvtVector | LocalApic::kLvtMasked | LocalApic::kLvtTimerMode,
    LocalApic::kLvtVector | LocalApic::kLvtMode | LocalApic::kLvtMasked,
    LocalApic::kLvtVector | LocalApic::kLvtMode | LocalApic::kLvtMasked,
    LocalApic::kLvtVector | LocalApic::kLvtMode | LocalApic::kLvtActiveLow | LocalApic::kLvtLevel |
        LocalApic::kLvtMasked,
    LocalApic::kLvtVector | LocalApic::kLvtMode | LocalApic::kLvtActiveLow | LocalApic::kLvtLevel |
        LocalApic::kLvtMasked,
    LocalApic::kLvtVector | LocalApic::kLvtMasked,
    LocalApic::kLvtVector | LocalApic::kLvtMode | LocalApic::kLvtMasked,
};

DeviceOutcome general_protection() { return DeviceOutcome::exception(LocalApic::kGeneralProtection, true, 0); }

u64 saturate(u128 value) { return value > kNoDeadline ? kNoDeadline : static_cast<u64>(value); }

u64 all_ones(u8 size) { return size >= 8 ? ~u64{0} : (u64{1} << (8 * size)) - 1; }

// The LVT entry at `offset`, or -1.
int lvt_index(u32 offset) {
    if (offset == LocalApic::kLvtCmci) return 6;
    if (offset < LocalApic::kLvtTimer || offset > LocalApic::kLvtError || offset % LocalApic::kRegisterStride != 0)
        return -1;
    return static_cast<int>((offset - LocalApic::kLvtTimer) / LocalApic::kRegisterStride);
}

// x2APIC's logical ID: the cluster (ID bits 31:4) in bits 31:16, one bit of 16 for ID bits 3:0.
u32 x2apic_logical_id(u32 id) { return ((id >> 4) << 16) | (1u << (id & 0xF)); }

}  // namespace

LocalApic::LocalApic(u32 apic_id, const GuestClock& clock, ApicBus& bus, EoiListener& eoi, u64 timer_khz,
                     bool bootstrap)
    : clock_(clock),
      bus_(bus),
      eoi_(eoi),
      timer_khz_(timer_khz == 0 ? 1 : timer_khz),
      initial_id_(apic_id),
      apic_base_(kDefaultBase | kBaseEnable | (bootstrap ? kBaseBsp : 0)),
      xapic_id_(static_cast<u8>(apic_id)),
      waiting_for_startup_(!bootstrap) {
    reset_registers();
}

// ---- Guest accesses ----

bool LocalApic::mmio_active(u64 address) const {
    return hardware_enabled() && !x2apic() && address - base() < kMmioSize;
}

DeviceOutcome LocalApic::mmio_read(u64 address, u8 size, u64& value, virt::DeviceHost&) {
    if (!mmio_active(address)) {
        value = all_ones(size);
        return {};
    }
    const u32 offset = static_cast<u32>(address - base());
    u32 register_value = 0;
    value = 0;
    if (size == 4 && offset % kRegisterStride == 0 && read_register(offset, register_value)) value = register_value;
    return {};
}

DeviceOutcome LocalApic::mmio_write(u64 address, u8 size, u64 value, virt::DeviceHost&) {
    if (!mmio_active(address)) return {};
    const u32 offset = static_cast<u32>(address - base());
    if (size == 4 && offset % kRegisterStride == 0) (void)write_register(offset, static_cast<u32>(value));
    return {};
}

DeviceOutcome LocalApic::msr_read(u32 index, u64& value, virt::DeviceHost&) {
    if (index == kMsrApicBase) {
        value = apic_base_;
        return {};
    }
    if (index == kMsrTscDeadline) {
        value = timer_mode() == TimerMode::tsc_deadline ? tsc_deadline_ : 0;
        return {};
    }
    if (index - kMsrX2apicFirst >= kMsrX2apicCount || !x2apic()) return general_protection();
    const u32 offset = (index - kMsrX2apicFirst) * kRegisterStride;
    if (offset == kIcrLow) {
        value = (u64{icr_high_} << 32) | icr_low_;
        return {};
    }
    u32 register_value = 0;
    if (!read_register(offset, register_value)) return general_protection();
    value = register_value;
    return {};
}

DeviceOutcome LocalApic::msr_write(u32 index, u64 value, virt::DeviceHost&) {
    if (index == kMsrApicBase) return write_apic_base(value) ? DeviceOutcome{} : general_protection();
    if (index == kMsrTscDeadline) {
        write_tsc_deadline(value);
        return {};
    }
    return write_x2apic(index, value) ? DeviceOutcome{} : general_protection();
}

bool LocalApic::write_x2apic(u32 index, u64 value) {
    // EOI first: an x2APIC guest writes it after every interrupt.
    if (index == kMsrX2apicEoi && x2apic()) {
        if (value != 0) return false;
        end_of_interrupt();
        return true;
    }
    if (index - kMsrX2apicFirst >= kMsrX2apicCount || !x2apic()) return false;
    const u32 offset = (index - kMsrX2apicFirst) * kRegisterStride;
    if (offset == kIcrLow) return write_x2apic_icr(value);
    // Every other x2APIC register is 32 bits wide: its bits 63:32 are reserved.
    return value >> 32 == 0 && write_register(offset, static_cast<u32>(value));
}

// ---- Registers ----

// False: nothing to read there in the current mode (xAPIC reads 0, x2APIC raises #GP).
bool LocalApic::read_register(u32 offset, u32& value) const {
    switch (offset) {
    case kId: value = x2apic() ? initial_id_ : u32{xapic_id_} << kIdXapicShift; return true;
    case kVersion: value = kVersionValue; return true;
    case kTpr: value = tpr_; return true;
    case kApr: value = arbitration_priority(); return !x2apic();
    case kPpr: value = ppr(); return true;
    case kLdr: value = ldr_; return true;
    case kDfr: value = dfr_; return !x2apic();
    case kSvr: value = svr_; return true;
    case kEsr: value = esr_; return true;
    case kIcrLow: value = icr_low_; return true;
    case kIcrHigh: value = icr_high_; return !x2apic();
    case kTimerInitialCount: value = timer_initial_; return true;
    case kTimerCurrentCount: value = current_count(clock_.now()); return true;
    case kTimerDivide: value = divide_config_; return true;
    default: break;
    }
    if (offset >= kIsr && offset < kIrr + kVectorBankSize) return read_vector_register(offset, value);
    const int index = lvt_index(offset);
    if (index < 0) return false;  // EOI and SELF IPI are write-only; RRD and the rest reserved
    value = lvt_[index];
    return true;
}

bool LocalApic::read_vector_register(u32 offset, u32& value) const {
    const u32 word = (offset % kVectorBankSize) / kRegisterStride;
    switch ((offset - kIsr) / kVectorBankSize) {
    case 0: value = isr_.word[word]; break;
    case 1: value = tmr_.word[word]; break;
    default: value = irr_.word[word]; break;
    }
    return true;
}

// False: no register to write there in the current mode, or a value x2APIC refuses (#GP).
bool LocalApic::write_register(u32 offset, u32 value) {
    switch (offset) {
    case kId:
        if (x2apic()) return false;
        xapic_id_ = static_cast<u8>(value >> kIdXapicShift);
        return true;
    case kTpr: set_tpr(static_cast<u8>(value)); return true;
    case kEoi:
        if (x2apic() && value != 0) return false;
        end_of_interrupt();
        return true;
    case kLdr:
        if (x2apic()) return false;
        ldr_ = value & kLdrXapic;
        return true;
    case kDfr:
        if (x2apic()) return false;
        dfr_ = value | ~kDfrModel;
        return true;
    case kSvr: write_svr(value); return true;
    case kEsr:
        if (x2apic() && value != 0) return false;
        write_esr();
        return true;
    case kIcrLow:
        if (x2apic()) return false;
        icr_low_ = value & kIcrWritable;
        send_ipi(icr_low_, icr_high_ >> kXapicDestinationShift);
        return true;
    case kIcrHigh:
        if (x2apic()) return false;
        icr_high_ = value & (u32{0xFF} << kXapicDestinationShift);
        return true;
    case kTimerInitialCount: write_initial_count(value); return true;
    case kTimerDivide: write_divide(value); return true;
    case kSelfIpi:
        if (!x2apic() || value > kIcrVector) return false;
        self_ipi(static_cast<u8>(value));
        return true;
    default: break;
    }
    const int index = lvt_index(offset);
    if (index < 0) return false;
    write_lvt(static_cast<usize>(index), value);
    return true;
}

// The SDM's mode transitions: disabled <-> xAPIC -> x2APIC -> disabled. EXTD without EN,
// x2APIC straight to xAPIC, disabled straight to x2APIC and reserved bits are #GP.
bool LocalApic::write_apic_base(u64 value) {
    const bool enable = (value & kBaseEnable) != 0;
    const bool extended = (value & kBaseX2apic) != 0;
    if ((value & ~kBaseWritable) != 0 || (extended && !enable)) return false;
    if ((x2apic() && enable && !extended) || (!hardware_enabled() && extended)) return false;
    const u64 old = apic_base_;
    apic_base_ = value;
    // Disabling loses the APIC's state (SDM 11.4.3): it comes back as after power-up.
    if (!enable && (old & kBaseEnable) != 0) {
        xapic_id_ = static_cast<u8>(initial_id_);
        reset_registers();
    }
    if (extended && (old & kBaseX2apic) == 0) ldr_ = x2apic_logical_id(initial_id_);
    return true;
}

bool LocalApic::write_x2apic_icr(u64 value) {
    if ((value & kX2apicIcrReserved) != 0) return false;
    icr_low_ = static_cast<u32>(value) & kIcrWritable;  // delivery status (bit 12) is ignored
    icr_high_ = static_cast<u32>(value >> 32);
    send_ipi(icr_low_, icr_high_);
    return true;
}

void LocalApic::write_svr(u32 value) {
    svr_ = value & kSvrWritable;
    if (software_enabled()) return;
    for (u32& entry : lvt_) entry |= kLvtMasked;
}

// A write latches the errors seen since the previous one and starts collecting anew.
void LocalApic::write_esr() {
    esr_ = pending_errors_;
    pending_errors_ = 0;
}

void LocalApic::write_lvt(usize index, u32 value) {
    u32 entry = value & kLvtWritable[index];
    if (!software_enabled()) entry |= kLvtMasked;  // software-disabled: nothing can be unmasked
    const TimerMode old_mode = timer_mode();
    lvt_[index] = entry;
    if (index == kTimerLvt) timer_mode_changed(old_mode);
}

void LocalApic::reset_registers() {
    tpr_ = 0;
    if (!x2apic()) ldr_ = 0;  // x2APIC's is derived from its ID
    dfr_ = kDfrReset;
    svr_ = kSvrReset;
    isr_ = tmr_ = irr_ = Vectors{};
    esr_ = pending_errors_ = 0;
    icr_low_ = icr_high_ = 0;
    for (u32& entry : lvt_) entry = kLvtReset;
    divide_config_ = 0;
    timer_initial_ = count_at_start_ = 0;
    countdown_start_ = 0;
    counting_ = false;
    tsc_deadline_ = 0;
    deadline_ = kNoDeadline;
}

void LocalApic::reset_for_init() {
    reset_registers();
    nmi_pending_ = false;
}

// ---- Priorities and the vCPU's side ----

u8 LocalApic::ppr() const {
    const u32 isrv = priority_class(isr_.highest());
    return static_cast<u8>((tpr_ & kPriorityClass) >= isrv ? tpr_ : isrv);
}

// SDM 11.6.2.4, as written: APR = TPR if TPR's class is at least IRRV's and above ISRV's, else
// the larger of (TPR AND ISRV)'s class and IRRV's.
u8 LocalApic::arbitration_priority() const {
    const u8 tpr = task_priority();
    const u32 tpr_class = tpr & kPriorityClass;
    const u32 isrv = priority_class(isr_.highest());
    const u32 irrv = priority_class(irr_.highest());
    if (tpr_class >= irrv && tpr_class > isrv) return tpr;
    const u32 both = tpr_class & isrv;
    return static_cast<u8>(both > irrv ? both : irrv);
}

int LocalApic::pending_vector() const {
    if (!hardware_enabled() || !software_enabled()) return -1;
    const int vector = irr_.highest();
    if (vector < 0 || priority_class(vector) <= (ppr() & kPriorityClass)) return -1;
    return vector;
}

u8 LocalApic::cr8_threshold() const {
    if (!hardware_enabled() || !software_enabled()) return 0;
    const u32 irrv = priority_class(irr_.highest());
    if (irrv <= priority_class(isr_.highest()) || irrv > (tpr_ & kPriorityClass)) return 0;
    return static_cast<u8>(irrv >> 4);
}

void LocalApic::acknowledge(u8 vector) {
    irr_.clear(vector);
    isr_.set(vector);
}

bool LocalApic::take_nmi() {
    const bool pending = nmi_pending_;
    nmi_pending_ = false;
    return pending;
}

bool LocalApic::take_init() {
    if (!init_pending_) return false;
    init_pending_ = false;
    // The bootstrap processor restarts at the reset vector; the others wait for a startup IPI.
    waiting_for_startup_ = !bootstrap();
    return true;
}

int LocalApic::take_startup() {
    if (!startup_pending_ || init_pending_) return -1;
    startup_pending_ = false;
    waiting_for_startup_ = false;
    return startup_vector_;
}

bool LocalApic::accepts_pic_interrupts() const {
    if (!hardware_enabled()) return true;
    const u32 lint0 = lvt_[kLint0Lvt];
    return (lint0 & kLvtMasked) == 0 && ((lint0 & kLvtMode) >> kLvtModeShift) == static_cast<u32>(DeliveryMode::extint);
}

bool LocalApic::raise_lint1() {
    if (!hardware_enabled()) {
        nmi_pending_ = true;
        return true;
    }
    const u32 lint1 = lvt_[kLint1Lvt];
    const u32 mode = (lint1 & kLvtMode) >> kLvtModeShift;
    if ((lint1 & kLvtMasked) != 0 ||
        (mode != static_cast<u32>(DeliveryMode::nmi) && mode != static_cast<u32>(DeliveryMode::fixed)))
        return false;
    deliver_local(kLint1Lvt);
    return true;
}

// ---- Messages ----

void LocalApic::send_ipi(u32 icr_low, u32 destination) {
    const u8 vector = static_cast<u8>(icr_low & kIcrVector);
    const u32 mode = (icr_low >> kIcrModeShift) & 7;
    const bool fixed =
        mode == static_cast<u32>(DeliveryMode::fixed) || mode == static_cast<u32>(DeliveryMode::lowest_priority);
    if (fixed && vector < kFirstLegalVector) return signal_error(kEsrSendIllegalVector);
    // 3 is reserved and ExtINT cannot be sent as an IPI.
    if (mode == 3 || mode == static_cast<u32>(DeliveryMode::extint)) return;
    // Trigger mode and level mean something for INIT alone (its level de-assert); every other
    // IPI is an edge (SDM 11.6.1).
    const bool init = mode == static_cast<u32>(DeliveryMode::init);
    ApicMessage message{};
    message.destination = destination;
    message.vector = vector;
    message.mode = static_cast<DeliveryMode>(mode);
    message.logical = (icr_low & kIcrLogical) != 0;
    message.level_triggered = init && (icr_low & kIcrLevel) != 0;
    message.assert = !init || (icr_low & kIcrAssert) != 0;
    message.shorthand = static_cast<Shorthand>((icr_low >> kIcrShorthandShift) & 3);
    message.source_apic = id();
    bus_.deliver(message);
}

void LocalApic::self_ipi(u8 vector) {
    if (vector < kFirstLegalVector) return signal_error(kEsrSendIllegalVector);
    ApicMessage message{};
    message.destination = id();
    message.vector = vector;
    message.mode = DeliveryMode::fixed;
    message.logical = false;
    message.level_triggered = false;
    message.shorthand = Shorthand::self;
    message.source_apic = id();
    accept(message);
}

bool LocalApic::matches(const ApicMessage& message) const {
    if (!hardware_enabled()) return false;
    switch (message.shorthand) {
    case Shorthand::self: return message.source_apic == id();
    case Shorthand::all_including_self: return true;
    case Shorthand::all_excluding_self: return message.source_apic != id();
    case Shorthand::none: break;
    }
    return message.logical ? matches_logical(message.destination) : matches_physical(message.destination);
}

// In x2APIC mode 0xFF is still a broadcast: an I/O APIC's destination has eight bits (as KVM's
// default). The platform's APIC IDs are far below 0xFF, so no x2APIC ID is lost to it.
bool LocalApic::matches_physical(u32 destination) const {
    if (destination == kX2apicBroadcast || destination == kXapicBroadcast) return true;
    return destination == id();
}

bool LocalApic::matches_logical(u32 destination) const {
    if (destination == kX2apicBroadcast) return true;
    if (x2apic()) return (destination >> 16) == (ldr_ >> 16) && (destination & ldr_ & 0xFFFF) != 0;
    const u32 target = destination & 0xFF;
    const u32 logical_id = ldr_ >> kIdXapicShift;
    if (target == kXapicBroadcast) return true;
    switch (dfr_ & kDfrModel) {
    case kFlatModel: return (logical_id & target) != 0;
    case kClusterModel: return (logical_id >> 4) == (target >> 4) && (logical_id & target & 0xF) != 0;
    default: return false;
    }
}

void LocalApic::accept(const ApicMessage& message) {
    if (!hardware_enabled()) return;
    switch (message.mode) {
    case DeliveryMode::fixed:
    case DeliveryMode::lowest_priority: accept_fixed(message); break;
    case DeliveryMode::nmi: nmi_pending_ = true; break;
    case DeliveryMode::init:
        // A level-triggered de-assert only synchronises arbitration IDs.
        if (message.assert || !message.level_triggered) init_pending_ = true;
        break;
    case DeliveryMode::startup: accept_startup(message.vector); break;
    default: break;  // SMI: no SMM here; ExtINT comes through the 8259A's path
    }
}

void LocalApic::accept_fixed(const ApicMessage& message) {
    if (message.level_triggered && !message.assert) return;
    if (!software_enabled()) return;  // software-disabled: fixed interrupts are dropped, as KVM
    if (message.vector < kFirstLegalVector) return signal_error(kEsrReceiveIllegalVector);
    irr_.set(message.vector);
    if (message.level_triggered)
        tmr_.set(message.vector);
    else
        tmr_.clear(message.vector);
}

// A startup IPI counts only in wait-for-SIPI, or behind an INIT that will lead there.
void LocalApic::accept_startup(u8 vector) {
    if (!waiting_for_startup_ && !(init_pending_ && !bootstrap())) return;
    startup_vector_ = vector;
    startup_pending_ = true;
}

// An interrupt from an LVT entry: fixed (edge) or NMI; the other modes have no source here.
void LocalApic::deliver_local(usize lvt_index) {
    const u32 entry = lvt_[lvt_index];
    if ((entry & kLvtMasked) != 0) return;
    const u32 mode = (entry & kLvtMode) >> kLvtModeShift;
    if (mode == static_cast<u32>(DeliveryMode::nmi)) {
        nmi_pending_ = true;
        return;
    }
    if (mode != static_cast<u32>(DeliveryMode::fixed)) return;
    const u8 vector = static_cast<u8>(entry & kLvtVector);
    if (vector < kFirstLegalVector) {
        pending_errors_ |= kEsrReceiveIllegalVector;  // no second error interrupt for it
        return;
    }
    irr_.set(vector);
    tmr_.clear(vector);
}

void LocalApic::signal_error(u32 bits) {
    pending_errors_ |= bits;
    deliver_local(kErrorLvt);
}

// ---- Timer ----

bool LocalApic::count_mode() const {
    const TimerMode mode = timer_mode();
    return mode == TimerMode::one_shot || mode == TimerMode::periodic;
}

// Into or out of TSC-deadline mode the timer stops and both its counts clear (as KVM); between
// one-shot and periodic a countdown goes on; the reserved mode runs nothing.
void LocalApic::timer_mode_changed(TimerMode old_mode) {
    const TimerMode mode = timer_mode();
    if (mode == old_mode) return;
    if ((mode == TimerMode::tsc_deadline) != (old_mode == TimerMode::tsc_deadline)) {
        timer_initial_ = 0;
        tsc_deadline_ = 0;
        counting_ = false;
        deadline_ = kNoDeadline;
    } else if (mode == TimerMode::reserved) {
        counting_ = false;
        deadline_ = kNoDeadline;
    }
}

void LocalApic::write_initial_count(u32 value) {
    if (timer_mode() == TimerMode::tsc_deadline) return;  // ignored in that mode
    timer_initial_ = value;
    if (value == 0 || !count_mode()) {
        counting_ = false;
        deadline_ = kNoDeadline;
        return;
    }
    start_countdown(clock_.now(), value);
}

// A new divisor changes the rate from now on: the count reached so far is kept.
void LocalApic::write_divide(u32 value) {
    const u64 now = clock_.now();
    const bool rebase = counting_ && now < deadline_;
    const u32 remaining = rebase ? current_count(now) : 0;
    divide_config_ = value & kDivideWritable;
    if (rebase) start_countdown(now, remaining);
}

void LocalApic::write_tsc_deadline(u64 value) {
    if (timer_mode() != TimerMode::tsc_deadline) return;  // ignored in the other modes
    tsc_deadline_ = value;
    deadline_ = value == 0 ? kNoDeadline : value;
}

void LocalApic::start_countdown(u64 now, u32 count) {
    countdown_start_ = now;
    count_at_start_ = count;
    counting_ = true;
    deadline_ = end_of_countdown();
}

void LocalApic::advance(u64 now) {
    if (deadline_ == kNoDeadline || now < deadline_) return;
    deliver_local(kTimerLvt);
    switch (timer_mode()) {
    case TimerMode::periodic: rearm_period(now); return;
    case TimerMode::tsc_deadline: tsc_deadline_ = 0; break;  // the MSR disarms itself
    default: counting_ = false; break;
    }
    deadline_ = kNoDeadline;
}

// The next period starts where the last one ended; a timer that fell a period or more behind
// starts it at `now` instead, so it fires once per call, never a storm. A period lasts at least
// one TSC tick (end_of_countdown rounds up), so the deadline always moves past `now`.
void LocalApic::rearm_period(u64 now) {
    start_countdown(deadline_, timer_initial_);
    if (deadline_ <= now) start_countdown(now, timer_initial_);
    // A periodic interrupt comes at most every min_period_ ticks: a period of a few ticks would
    // take the CPU back from the guest before its handler ran.
    u64 earliest = 0;
    if (__builtin_add_overflow(now, min_period_, &earliest)) earliest = kNoDeadline;
    if (deadline_ < earliest) deadline_ = earliest;
}

u32 LocalApic::current_count(u64 now) const {
    if (!counting_ || !count_mode()) return 0;
    const u64 elapsed = now > countdown_start_ ? tsc_to_counts(now - countdown_start_) : 0;
    if (elapsed < count_at_start_) return static_cast<u32>(count_at_start_ - elapsed);
    if (timer_mode() != TimerMode::periodic || timer_initial_ == 0) return 0;
    return static_cast<u32>(timer_initial_ - (elapsed - count_at_start_) % timer_initial_);
}

// Divide configuration bits 3, 1:0: 000b divides by 2, ... 110b by 128, 111b by 1.
u64 LocalApic::divisor() const {
    const u32 code = (divide_config_ & 3) | ((divide_config_ & 8) >> 1);
    return code == 7 ? 1 : u64{2} << code;
}

u64 LocalApic::tsc_khz() const {
    const u64 khz = clock_.tsc_khz();
    return khz == 0 ? 1 : khz;
}

// TSC ticks until `counts` timer counts have passed, rounded up: the deadline is the first TSC
// value at which the count has reached 0.
u64 LocalApic::counts_to_tsc(u32 counts) const { return mul_div_up(u64{counts} * divisor(), tsc_khz(), timer_khz_); }

u64 LocalApic::tsc_to_counts(u64 ticks) const { return mul_div(ticks, timer_khz_, divisor() * tsc_khz()); }

u64 LocalApic::end_of_countdown() const { return saturate(u128{countdown_start_} + counts_to_tsc(count_at_start_)); }

}  // namespace nestor::pc
