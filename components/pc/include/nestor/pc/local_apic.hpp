// One vCPU's local APIC, xAPIC (MMIO page) and x2APIC (MSRs 0x800-0x8FF), as the Intel SDM vol. 3
// chapter 11 describes it; where the SDM leaves a choice, as KVM's arch/x86/kvm/lapic.c does.
// Version 0x14 with seven LVT entries (CMCI included), no directed EOI (SVR bit 12 stays 0), and
// a timer with one-shot, periodic and TSC-deadline modes that follows the guest's TSC.
//
// Messages are delivered at once: delivery status (ICR and LVT bit 12) always reads 0. Vectors
// 0-15 are never set in IRR: sending one (fixed or lowest priority) sets ESR's "send illegal
// vector" and sends nothing; receiving one sets "receive illegal vector". ESR reads what the
// last write to it latched.
#pragma once

#include "nestor/arch/apic_regs.hpp"
#include "nestor/arch/x86_regs.hpp"
#include "nestor/pc/links.hpp"
#include "nestor/virt/device_bus.hpp"

namespace nestor::pc {

// 1 << i for the 32 bit positions of a word: an EOI finds its masks here, with no shift by CL.
struct BitMasks {
    u32 of[32];
    constexpr BitMasks() : of{} {
        for (u32 i = 0; i < 32; ++i) of[i] = 1u << i;
    }
};
inline constexpr BitMasks kBitMask{};

class LocalApic final : public virt::Device {
public:
    static constexpr u64 kDefaultBase = apic_regs::kXapicBase;
    static constexpr u64 kMmioSize = apic_regs::kXapicPageSize;

    static constexpr u32 kMsrApicBase = x86_regs::kMsrApicBase;
    static constexpr u32 kMsrTscDeadline = x86_regs::kMsrTscDeadline;
    // x2APIC register n at kMsrX2apicFirst + offset / kRegisterStride.
    static constexpr u32 kMsrX2apicFirst = x86_regs::kMsrX2apicFirst;
    static constexpr u32 kMsrX2apicCount = apic_regs::kMsrX2apicCount;
    static constexpr u32 kRegisterStride = apic_regs::kRegisterStride;

    // IA32_APIC_BASE.
    static constexpr u64 kBaseBsp = x86_regs::kApicBaseBsp;
    static constexpr u64 kBaseX2apic = x86_regs::kApicBaseX2apic;
    static constexpr u64 kBaseEnable = x86_regs::kApicBaseEnable;
    // The page's address: bits 51:12 (the largest MAXPHYADDR); the rest is reserved.
    static constexpr u64 kBaseAddress = apic_regs::kApicBaseAddress;

    // Register offsets in the xAPIC page (x2APIC register n at kMsrX2apicFirst + offset / 16).
    static constexpr u32 kId = apic_regs::kXapicId;
    static constexpr u32 kVersion = apic_regs::kXapicVersion;
    static constexpr u32 kTpr = apic_regs::kXapicTpr;
    static constexpr u32 kApr = apic_regs::kXapicApr;
    static constexpr u32 kPpr = apic_regs::kXapicPpr;
    static constexpr u32 kEoi = apic_regs::kXapicEoi;
    static constexpr u32 kRrd = apic_regs::kXapicRrd;
    static constexpr u32 kLdr = apic_regs::kXapicLdr;
    static constexpr u32 kDfr = apic_regs::kXapicDfr;
    static constexpr u32 kSvr = apic_regs::kXapicSvr;
    static constexpr u32 kIsr = apic_regs::kXapicIsr;
    static constexpr u32 kTmr = apic_regs::kXapicTmr;
    static constexpr u32 kIrr = apic_regs::kXapicIrr;
    static constexpr u32 kEsr = apic_regs::kXapicEsr;
    static constexpr u32 kLvtCmci = apic_regs::kXapicLvtCmci;
    static constexpr u32 kIcrLow = apic_regs::kXapicIcrLow;
    static constexpr u32 kIcrHigh = apic_regs::kXapicIcrHigh;
    static constexpr u32 kLvtTimer = apic_regs::kXapicLvtTimer;
    static constexpr u32 kLvtThermal = apic_regs::kXapicLvtThermal;
    static constexpr u32 kLvtPerformance = apic_regs::kXapicLvtPerformance;
    static constexpr u32 kLvtLint0 = apic_regs::kXapicLvtLint0;
    static constexpr u32 kLvtLint1 = apic_regs::kXapicLvtLint1;
    static constexpr u32 kLvtError = apic_regs::kXapicLvtError;
    static constexpr u32 kTimerInitialCount = apic_regs::kXapicInitialCount;
    static constexpr u32 kTimerCurrentCount = apic_regs::kXapicCurrentCount;
    static constexpr u32 kTimerDivide = apic_regs::kXapicDivide;
    static constexpr u32 kSelfIpi = apic_regs::kXapicSelfIpi;
    static constexpr u32 kMsrX2apicEoi = apic_regs::kMsrX2apicEoi;

    // Version 0x14 (an integrated APIC), maximum LVT entry 6 (bits 23:16), no directed EOI.
    static constexpr u32 kVersionValue = 0x14 | (6u << 16);

    static constexpr u32 kSvrEnable = apic_regs::kSvrEnable;
    // Set: this APIC is never a lowest-priority message's focus processor (SDM 11.6.2.4).
    static constexpr u32 kSvrFocusDisabled = apic_regs::kSvrFocusDisabled;
    static constexpr u32 kSvrWritable = 0x3FF;  // vector, enable, focus checking
    static constexpr u32 kSvrReset = apic_regs::kSvrReset;
    static constexpr u32 kDfrReset = 0xFFFFFFFF;
    static constexpr u32 kDfrModel = 0xF0000000;  // the only writable bits: flat 0xF, cluster 0x0
    static constexpr u32 kLdrXapic = 0xFF000000;  // the logical ID's bits in xAPIC mode
    static constexpr u32 kIdXapicShift = apic_regs::kXapicIdShift;

    // LVT fields.
    static constexpr u32 kLvtVector = apic_regs::kLvtVector;
    static constexpr u32 kLvtModeShift = apic_regs::kLvtModeShift;
    static constexpr u32 kLvtMode = apic_regs::kLvtMode;
    static constexpr u32 kLvtActiveLow = apic_regs::kLvtActiveLow;
    static constexpr u32 kLvtLevel = apic_regs::kLvtLevel;
    static constexpr u32 kLvtMasked = apic_regs::kLvtMasked;
    static constexpr u32 kLvtTimerModeShift = apic_regs::kLvtTimerModeShift;
    static constexpr u32 kLvtTimerMode = apic_regs::kLvtTimerMode;
    static constexpr u32 kLvtReset = kLvtMasked;
    enum class TimerMode : u8 { one_shot = 0, periodic = 1, tsc_deadline = 2, reserved = 3 };

    static constexpr u32 kDivideWritable = apic_regs::kDivideBits;

    // ESR bits this model sets.
    static constexpr u32 kEsrSendIllegalVector = apic_regs::kEsrSendIllegalVector;
    static constexpr u32 kEsrReceiveIllegalVector = apic_regs::kEsrReceiveIllegalVector;

    // ICR (low half) fields.
    static constexpr u32 kIcrVector = apic_regs::kIcrVector;
    static constexpr u32 kIcrModeShift = apic_regs::kIcrModeShift;
    static constexpr u32 kIcrLogical = apic_regs::kIcrLogical;
    static constexpr u32 kIcrAssert = apic_regs::kIcrAssert;
    static constexpr u32 kIcrLevel = apic_regs::kIcrLevel;
    static constexpr u32 kIcrShorthandShift = apic_regs::kIcrShorthandShift;
    // What an ICR write keeps: vector, mode, destination mode, level, trigger, shorthand.
    static constexpr u32 kIcrWritable = 0x000CCFFF;
    // x2APIC's must-be-zero ICR bits (31:20, 17:16, 13): a WRMSR setting one is #GP.
    static constexpr u64 kX2apicIcrReserved = 0xFFF32000;
    static constexpr u32 kXapicDestinationShift = apic_regs::kXapicDestinationShift;

    static constexpr u8 kFirstLegalVector = 16;
    static constexpr u8 kGeneralProtection = 13;

    // `timer_khz`: the timer's input clock before the divide configuration.
    LocalApic(u32 apic_id, const GuestClock& clock, ApicBus& bus, EoiListener& eoi, u64 timer_khz, bool bootstrap);
    LocalApic(const LocalApic&) = delete;
    LocalApic& operator=(const LocalApic&) = delete;

    // The xAPIC page: only 32-bit accesses at a register's 16-byte boundary act; other widths
    // and offsets read 0 and write nothing. In x2APIC mode or hardware-disabled the page is no
    // device: reads all-ones, writes go nowhere.
    virt::DeviceOutcome mmio_read(u64 address, u8 size, u64& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome mmio_write(u64 address, u8 size, u64 value, virt::DeviceHost& host) override;
    // IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC registers (x2APIC mode only). What the
    // SDM calls reserved, read-only or write-only for that access is #GP(0).
    virt::DeviceOutcome msr_read(u32 index, u64& value, virt::DeviceHost& host) override;
    virt::DeviceOutcome msr_write(u32 index, u64 value, virt::DeviceHost& host) override;
    // A WRMSR to x2APIC register `index` (0x800-0x8FF), as msr_write does it; false: #GP(0),
    // and nothing changed.
    bool write_x2apic(u32 index, u64 value);

    u64 base() const { return apic_base_ & kBaseAddress; }
    u64 apic_base() const { return apic_base_; }
    bool x2apic() const { return (apic_base_ & kBaseX2apic) != 0; }
    bool hardware_enabled() const { return (apic_base_ & kBaseEnable) != 0; }
    bool software_enabled() const { return (svr_ & kSvrEnable) != 0; }
    bool bootstrap() const { return (apic_base_ & kBaseBsp) != 0; }
    // The ID messages are matched against: the xAPIC ID register, or the x2APIC ID.
    u32 id() const { return x2apic() ? initial_id_ : xapic_id_; }

    // The timer: the guest TSC of its next expiry (kNoDeadline: none), and what is due at `now`
    // (the vector in IRR unless masked; a periodic timer re-arms, once, however late `now` is).
    // The shortest period a periodic timer runs at, in TSC ticks (0: none; the platform sets
    // KVM's 200 us).
    void set_min_period(u64 tsc_ticks) { min_period_ = tsc_ticks; }
    u64 deadline() const { return deadline_; }
    void advance(u64 now);

    // This APIC as a destination on the bus.
    bool matches(const ApicMessage& message) const;
    void accept(const ApicMessage& message);
    // APR, from the vCPU's up-to-date TPR (task_priority()).
    u8 arbitration_priority() const;
    // The focus processor of a lowest-priority message for `vector`: focus checking on (SVR bit 9
    // clear) and `vector` already pending (IRR) or in service (ISR) here.
    bool is_focus_for(u8 vector) const {
        return (svr_ & kSvrFocusDisabled) == 0 && (irr_.test(vector) || isr_.test(vector));
    }

    // For the vCPU. The highest IRR vector whose priority class is above PPR's (-1: none, or
    // the APIC disabled); acknowledge() once it is injected.
    int pending_vector() const;
    void acknowledge(u8 vector);
    // An EOI: the highest vector in service is done, and a level-triggered one's source hears of
    // it. In two halves for a caller with more to do between them: end_in_service() gives the
    // vector whose source must hear (-1: none), tell_source() tells it.
    void end_of_interrupt() {
        if (const int level_triggered = end_in_service(); level_triggered >= 0)
            tell_source(static_cast<u8>(level_triggered));
    }
    [[gnu::always_inline]] int end_in_service() {
        if (isr_.nonzero == 0) return -1;
        // The masks come from a table, not from shifts by CL: the EOI's short path keeps what it
        // needs in the registers a call may clobber.
        const u32 words = isr_.nonzero;
        const u32 top = 31 - static_cast<u32>(__builtin_clz(words));
        u32& bits = isr_.word[top];
        const u32 bit = 31 - static_cast<u32>(__builtin_clz(bits));
        const u32 mask = kBitMask.of[bit];
        bits ^= mask;
        if (bits == 0) isr_.nonzero = static_cast<u8>(words ^ kBitMask.of[top]);
        return (tmr_.word[top] & mask) != 0 ? static_cast<int>(top * 32 + bit) : -1;
    }
    void tell_source(u8 vector) { eoi_.end_of_interrupt(vector); }
    bool any_in_service() const { return isr_.nonzero != 0; }
    bool any_requested() const { return irr_.nonzero != 0; }
    bool nmi_pending() const { return nmi_pending_; }
    bool take_nmi();
    bool init_pending() const { return init_pending_; }
    // Where init_pending() is kept: the scheduler watches it for a started application processor
    // without a call into the PC (virt::Vcpu::init_pending).
    const bool& init_pending_flag() const { return init_pending_; }
    // The vCPU takes an INIT by resetting itself and calling reset_for_init(); it leaves an
    // application processor waiting for a startup IPI.
    bool take_init();
    // The INIT went elsewhere (a VM exit into a guest hypervisor took it): it is gone, with a
    // startup IPI that waited behind it, and the vCPU runs on.
    void drop_init() {
        init_pending_ = false;
        startup_pending_ = false;
    }
    // The INIT waits (a guest hypervisor's state holds it back): a startup IPI that came meanwhile
    // found the vCPU running, not in wait-for-SIPI, and is ignored, as on a CPU.
    void drop_startup() { startup_pending_ = false; }
    bool waiting_for_startup() const { return waiting_for_startup_; }
    // The startup IPI's vector, or -1; one that arrived behind an INIT waits until it is taken.
    int take_startup();
    u8 tpr() const { return tpr_; }
    void set_tpr(u8 tpr) { tpr_ = tpr; }
    u8 ppr() const;
    // CR8 is the TPR's priority class (SDM 10.8.6.1). The vCPU writes it without an exit:
    // sync_cr8() takes the value it holds, as a MOV to CR8 sets it (bits 3:0 of TPR cleared)
    // unless the class is what TPR has already; cr8() gives the vCPU the TPR's.
    u8 cr8() const { return static_cast<u8>(tpr_ >> 4); }
    void sync_cr8(u8 cr8) {
        if (cr8 != tpr_ >> 4) tpr_ = static_cast<u8>(cr8 << 4);
    }
    // Where the vCPU keeps its CR8 between its runs (virt::VcpuState::cr8; nullptr: nowhere, the
    // model's TPR is the truth). Another vCPU's message may be arbitrated while this APIC's model
    // has not seen the guest's last MOV to CR8: arbitration reads TPR through task_priority().
    void set_cr8_source(const u8* cr8) { cr8_source_ = cr8; }
    // TPR as the vCPU has it now: the model's, with the class of the CR8 it holds.
    u8 task_priority() const {
        if (cr8_source_ == nullptr || *cr8_source_ == tpr_ >> 4) return tpr_;
        return static_cast<u8>(*cr8_source_ << 4);
    }
    // When TPR alone holds back the highest interrupt in IRR (its class above the in-service
    // one's, not above TPR's): its class, the value CR8 must drop below for it to be delivered.
    // 0 when nothing waits for TPR.
    u8 cr8_threshold() const;
    // Nothing in IRR can be delivered, and `threshold` is still cr8_threshold(): the vCPU's last
    // entry stands (one pass over IRR and ISR for both questions). Inline: every EOI asks.
    [[gnu::always_inline]] bool nothing_new(u8 threshold) const {
        const int irr = irr_.highest();
        if (irr < 0 || !hardware_enabled() || !software_enabled()) return threshold == 0;
        const u32 irrv = priority_class(irr), isrv = priority_class(isr_.highest()), tpr = tpr_ & kPriorityClass;
        if (irrv > tpr && irrv > isrv) return false;  // deliverable
        return (irrv > isrv ? irrv >> 4 : 0) == threshold;
    }
    // Whether the 8259A's INTR reaches this vCPU: LINT0 unmasked as ExtINT, or no APIC at all.
    bool accepts_pic_interrupts() const;
    // An edge on LINT1 (the platform's NMI line): what its LVT entry says, unless masked (NMI, or
    // a fixed edge-triggered vector); with the APIC hardware-disabled the pin is the processor's
    // NMI input. True: the APIC took it (its vCPU may have something to wake for).
    bool raise_lint1();
    // INIT: every register to its reset value but the ID and IA32_APIC_BASE; a pending NMI is lost.
    void reset_for_init();

private:
    u64 min_period_ = 0;
    static constexpr u32 kPriorityClass = 0xF0;  // a vector's or priority register's bits 7:4
    static constexpr u32 priority_class(int vector) {
        return vector < 0 ? 0 : static_cast<u32>(vector) & kPriorityClass;
    }
    static constexpr usize kLvtCount = 7;
    static constexpr usize kVectorWords = 8;
    enum LvtIndex : u8 { kTimerLvt = 0, kThermalLvt, kPerformanceLvt, kLint0Lvt, kLint1Lvt, kErrorLvt, kCmciLvt };

    bool mmio_active(u64 address) const;
    bool read_register(u32 offset, u32& value) const;
    bool read_vector_register(u32 offset, u32& value) const;
    bool write_register(u32 offset, u32 value);
    bool write_apic_base(u64 value);
    bool write_x2apic_icr(u64 value);
    void write_svr(u32 value);
    void write_esr();
    void write_lvt(usize index, u32 value);
    void write_initial_count(u32 value);
    void write_divide(u32 value);
    void write_tsc_deadline(u64 value);
    void reset_registers();

    void send_ipi(u32 icr_low, u32 destination);
    void self_ipi(u8 vector);
    void accept_fixed(const ApicMessage& message);
    void accept_startup(u8 vector);
    void deliver_local(usize lvt_index);
    void signal_error(u32 bits);
    bool matches_physical(u32 destination) const;
    bool matches_logical(u32 destination) const;

    TimerMode timer_mode() const {
        return static_cast<TimerMode>((lvt_[kTimerLvt] & kLvtTimerMode) >> kLvtTimerModeShift);
    }
    bool count_mode() const;
    void timer_mode_changed(TimerMode old_mode);
    void start_countdown(u64 now, u32 count);
    void rearm_period(u64 now);
    u32 current_count(u64 now) const;
    u64 divisor() const;
    u64 tsc_khz() const;
    u64 counts_to_tsc(u32 counts) const;
    u64 tsc_to_counts(u64 ticks) const;
    u64 end_of_countdown() const;

    const GuestClock& clock_;
    ApicBus& bus_;
    EoiListener& eoi_;
    u64 timer_khz_;
    u32 initial_id_;  // the x2APIC ID; the xAPIC ID's reset value is its low byte
    u64 apic_base_;

    u8 xapic_id_ = 0;
    u8 tpr_ = 0;
    const u8* cr8_source_ = nullptr;
    u32 ldr_ = 0;
    u32 dfr_ = kDfrReset;
    u32 svr_ = kSvrReset;
    // 256 vector bits as the eight 32-bit registers the guest reads, with the words that hold
    // any: the highest vector is two bit scans (every exit asks for IRR's and ISR's).
    struct Vectors {
        u32 word[kVectorWords] = {};
        u8 nonzero = 0;

        void set(u8 vector) {
            word[vector / 32] |= 1u << (vector % 32);
            nonzero = static_cast<u8>(nonzero | (1u << (vector / 32)));
        }
        void clear(u8 vector) {
            u32& bits = word[vector / 32];
            bits &= ~(1u << (vector % 32));
            if (bits == 0) nonzero = static_cast<u8>(nonzero & ~(1u << (vector / 32)));
        }
        bool test(u8 vector) const { return (word[vector / 32] >> (vector % 32)) & 1; }
        int highest() const {
            if (nonzero == 0) return -1;
            const int top = 31 - __builtin_clz(nonzero);
            return top * 32 + 31 - __builtin_clz(word[top]);
        }
    };
    Vectors isr_;
    Vectors tmr_;
    Vectors irr_;
    u32 esr_ = 0;             // what the last ESR write latched
    u32 pending_errors_ = 0;  // errors since then
    u32 icr_low_ = 0;
    u32 icr_high_ = 0;
    u32 lvt_[kLvtCount] = {};
    u32 divide_config_ = 0;

    // The timer. A countdown ran from `count_at_start_` at guest TSC `countdown_start_`; the
    // register of initial count reloads a periodic one.
    u32 timer_initial_ = 0;
    u32 count_at_start_ = 0;
    u64 countdown_start_ = 0;
    bool counting_ = false;
    u64 tsc_deadline_ = 0;  // IA32_TSC_DEADLINE while armed
    u64 deadline_ = kNoDeadline;

    bool nmi_pending_ = false;
    bool init_pending_ = false;
    bool startup_pending_ = false;
    bool waiting_for_startup_ = false;
    u8 startup_vector_ = 0;
};

}  // namespace nestor::pc
