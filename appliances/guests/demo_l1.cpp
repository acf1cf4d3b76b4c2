// The demo's nested pair: this domain (nested_virt) is a small hypervisor, L1, that runs a guest of
// its own, L2, with SVM's VMRUN. L2 is a function of this image run in L2's world (its own stack,
// L1's page tables): it prints through the console port, which L1's I/O permission map lets
// through (so the line comes from L2 itself, with no help from L1), then reports to L1 with
// VMMCALL and halts; L1 intercepts both and says what it saw. On an Intel CPU the domain sees VMX
// instead and does the same with VMLAUNCH: an I/O bitmap that lets COM1 through, VMCALL and HLT
// exits.
#include "nestor/guest.hpp"
#include "nestor/svm.hpp"
#include "nestor/vmx.hpp"

using namespace nestor::guest;
namespace svm = nestor::guest::svm;
namespace vmx = nestor::guest::vmx;

namespace {

constexpr u64 kHelloFromL2 = 0x4C32;  // "L2": what L2 passes in RAX with its VMMCALL
constexpr u16 kCom1 = 0x3F8;
constexpr u16 kCom1Ports = 8;

alignas(4096) svm::Vmcb vmcb;
alignas(4096) u8 host_save_area[4096];
alignas(4096) u8 iopm[svm::kIopmBytes];
alignas(16) u8 l2_stack[16384];
alignas(4096) u8 vmxon_region[4096];
alignas(4096) u8 vmcs[4096];
alignas(4096) u8 io_bitmaps[2][4096];

// L2's whole life. Runs in L2, never called by L1.
[[noreturn]] void l2_main() {
    println("L2: hello from a guest of a guest: L1 started me with VMRUN, Nestor runs L1");
    asm volatile("vmmcall" ::"a"(kHelloFromL2) : "memory");
    for (;;) asm volatile("hlt");
}

// L2 starts in L1's own 64-bit mode, at l2_main with interrupts off. L1 intercepts VMMCALL, HLT
// and every port but COM1's.
void set_up_l2() {
    for (u64 i = 0; i < sizeof(iopm); ++i) iopm[i] = 0xFF;
    for (u16 port = kCom1; port < kCom1 + kCom1Ports; ++port) iopm[port / 8] &= static_cast<u8>(~(1u << (port % 8)));
    svm::VmcbControl& c = vmcb.control;
    c.intercept_misc1 = svm::intercept1::hlt | svm::intercept1::ioio_prot;
    c.intercept_misc2 = svm::intercept2::vmrun | svm::intercept2::vmmcall;
    c.iopm_base_pa = reinterpret_cast<u64>(iopm);
    c.guest_asid = 1;
    svm::copy_own_state(vmcb.save);
    vmcb.save.rip = reinterpret_cast<u64>(&l2_main);
    vmcb.save.rsp = reinterpret_cast<u64>(l2_stack + sizeof(l2_stack)) - 8;  // as if l2_main had been called
}

int run_l2() {
    wrmsr(svm::kMsrEfer, rdmsr(svm::kMsrEfer) | svm::kEferSvme);
    wrmsr(svm::kMsrVmHsavePa, reinterpret_cast<u64>(host_save_area));
    set_up_l2();
    println("L1: a hypervisor inside a Nestor domain, starting its own guest (L2) with VMRUN");
    bool greeted = false;
    for (;;) {
        svm::vmrun(&vmcb);
        svm::stgi();  // every #VMEXIT clears GIF
        u64 code = vmcb.control.exit_code;
        if (code == svm::exit_code::vmmcall && vmcb.save.rax == kHelloFromL2) {
            println("L1: L2 called me with VMMCALL, rax ", hex(vmcb.save.rax), " (\"L2\")");
            greeted = true;
            vmcb.save.rip = vmcb.control.next_rip;
            continue;
        }
        if (code == svm::exit_code::hlt && greeted) {
            println("L1: L2 halted; its guest life is over, so is mine");
            return 0;
        }
        println("L1: unexpected exit ", hex(code), " from L2 at rip ", hex(vmcb.save.rip));
        return 1;
    }
}

// L2's whole life under VMX: the same greeting, with VMCALL.
[[noreturn]] void l2_main_vmx() {
    println("L2: hello from a guest of a guest: L1 started me with VMLAUNCH, Nestor runs L1");
    asm volatile("vmcall" ::"a"(kHelloFromL2) : "memory");
    for (;;) asm volatile("hlt");
}

int run_l2_vmx() {
    if (!vmx::enter_vmx_operation(vmxon_region, vmcs)) return 1;
    for (u64 i = 0; i < sizeof(io_bitmaps); ++i) io_bitmaps[0][i] = 0xFF;
    for (u16 port = kCom1; port < kCom1 + kCom1Ports; ++port)
        io_bitmaps[0][port / 8] &= static_cast<u8>(~(1u << (port % 8)));
    vmx::write_64bit_controls(0, vmx::primary::hlt_exiting | vmx::primary::use_io_bitmaps, 0);
    vmx::vmwrite(vmx::field::io_bitmap_a, reinterpret_cast<u64>(io_bitmaps[0]));
    vmx::vmwrite(vmx::field::io_bitmap_b, reinterpret_cast<u64>(io_bitmaps[1]));
    vmx::write_own_host_state();
    // As if l2_main_vmx had been called.
    vmx::write_own_guest_state(reinterpret_cast<u64>(&l2_main_vmx),
                               reinterpret_cast<u64>(l2_stack + sizeof(l2_stack)) - 8);
    println("L1: a hypervisor inside a Nestor domain, starting its own guest (L2) with VMLAUNCH");
    bool greeted = false;
    for (bool launch = true;; launch = false) {
        u64 failed = vmx::enter(launch);
        if (failed) {
            println("L1: VM entry failed, VM-instruction error ", vmx::vmread(vmx::field::instruction_error));
            return 1;
        }
        u32 reason = static_cast<u32>(vmx::vmread(vmx::field::exit_reason));
        if (reason == vmx::exit_reason::vmcall) {
            println("L1: L2 called me with VMCALL");
            greeted = true;
            vmx::skip_instruction();
            continue;
        }
        if (reason == vmx::exit_reason::hlt && greeted) {
            println("L1: L2 halted; its guest life is over, so is mine");
            return 0;
        }
        println("L1: unexpected exit ", reason, " from L2 at rip ", hex(vmx::vmread(vmx::field::guest_rip)));
        return 1;
    }
}

}  // namespace

extern "C" int guest_main(const nestor_guest_boot*) {
    bool svm_offered = cpuid(0x80000001).ecx & (1u << 2);
    bool vmx_offered = cpuid(1).ecx & (1u << 5);
    if (svm_offered) return run_l2();
    if (vmx_offered) return run_l2_vmx();
    println("L1: neither SVM nor VMX is offered to this domain: it needs the nested_virt flag");
    return 1;
}
