# VMX boot tests: built-in guests under Bochs' emulated Intel VMX (corei7_skylake_x: EPT, VPID,
# unrestricted guest, preemption timer). Bochs boots only a GRUB ISO, so run-emulator packs the
# ELF64 image with the command line into one. Bochs always exits 1: the NESTOR-EXIT line judges.
set(elf64 ${NESTOR_KERNEL_main_ELF})

nestor_boot_test(vmx.smoke_guest vmx TIMEOUT 120 ARGS --emulator bochs --kernel-elf64 ${elf64}
  --append "nestor.builtin-guest=smoke nestor.log=debug"
  --expect-status 0
  --expect "^virt: guest smoke starts on vmx "
  --expect "^\\[smoke\\] cpuid 0: max leaf 0x[0-9a-f]{8} vendor GenuineIntel$"
  --expect "^\\[smoke\\] cpuid 40000000: max leaf 0x40000001 signature NestorNestor$"
  --expect "^\\[smoke\\] cpuid 1: hypervisor=1 vmx=0$"
  --expect "^\\[smoke\\] cpuid 80000001: svm=0$"
  --expect "^\\[smoke\\] vmcall 0: rax=0x00000000$"
  --expect "^\\[smoke\\] vmcall 0x1234: rax=0x00000001$"
  --expect "^\\[smoke\\] rdmsr 8b: eax=0x00000000$"
  --expect "^\\[smoke\\] rdmsr c0010114: #GP$"
  --expect "^\\[smoke\\] vmxon \\(real mode\\): #UD$"
  --expect "^\\[smoke\\] vmptrld \\(real mode\\): #UD$"
  --expect "^\\[smoke\\] vmxon \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmclear \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmptrld \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmptrst \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmread \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmwrite \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmlaunch \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmresume \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] vmxoff \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] invept \\(protected mode\\): #UD$"
  --expect "^\\[smoke\\] invvpid \\(protected mode\\): #UD$"
  --expect "^debug: virt: exit cpuid \\(code 0xa\\) at rip 0x[0-9a-f]+, length 2$"
  --expect "^debug: virt: exit hypercall \\(code 0x12\\) at rip 0x[0-9a-f]+, length 3$"
  --expect "^debug: virt: exit msr_read \\(code 0x1f\\) at rip 0x[0-9a-f]+, length 2$"
  --expect "^debug: virt: exit virtualization_instruction \\(code 0x1b\\) at rip 0x[0-9a-f]+, length 6$"
  --expect "^debug: virt: exit virtualization_instruction \\(code 0x15\\) at rip 0x[0-9a-f]+, length 5$"
  --expect "^debug: virt: exit virtualization_instruction \\(code 0x17\\) at rip 0x[0-9a-f]+, length 5$"
  --expect "^debug: virt: exit virtualization_instruction \\(code 0x32\\) at rip 0x[0-9a-f]+, length 7$"
  --expect "^\\[smoke\\] smoke: done, failures 0x00000000$"
  --expect "^virt: guest smoke exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --reject "^error:"
  --reject "no #")

# The smoke guest starts in real mode (CR0.PE = 0): only unrestricted guest lets VMX run it.
nestor_boot_test(vmx.real_mode_guest_runs vmx TIMEOUT 120 ARGS --emulator bochs --kernel-elf64 ${elf64}
  --append "nestor.builtin-guest=smoke nestor.log=debug"
  --expect-status 0
  --expect "^debug: vmx: vCPU VMCS 0x[0-9a-f]+ VPID [1-9][0-9]* EPT 0x[0-9a-f]+, real mode$"
  --expect "^\\[smoke\\] vmxon \\(real mode\\): #UD$"
  --expect "^virt: guest smoke exited with status 0 \\(exit port\\)"
  --reject "^error:")

nestor_boot_test(vmx.npf_outside_guest_memory vmx TIMEOUT 120 ARGS --emulator bochs --kernel-elf64 ${elf64}
  --append "nestor.builtin-guest=npf"
  --expect-status 1
  --expect "^\\[npf\\] npf: reading guest-physical 0x20000$"
  --expect "^error: virt: guest npf stopped: bad memory access after [0-9]+ exits \\(last exit nested_page_fault code 0x30 "
  --expect "^error: virt: guest npf: read of guest-physical 0x20000, outside its memory$"
  --reject "did not stop the guest")

nestor_boot_test(vmx.unknown_builtin_guest vmx TIMEOUT 120 ARGS --emulator bochs --kernel-elf64 ${elf64}
  --append "nestor.builtin-guest=bogus"
  --expect-status 1 --expect "^error: virt: no built-in guest 'bogus'")

# A guest that computes 6 million instructions without an exit: the VMX preemption timer ends
# each time slice with a preemption exit, and the guest still finishes.
nestor_boot_test(vmx.time_slices_preempt_the_guest vmx TIMEOUT 120 ARGS --emulator bochs --kernel-elf64 ${elf64}
  --append "nestor.builtin-guest=spin nestor.time-slice=100000"
  --expect-status 0
  --expect "^\\[spin\\] spin: done$"
  --expect "^virt: guest spin was preempted [1-9][0-9]* times$"
  --expect "^virt: guest spin exited with status 0 \\(exit port\\)"
  --reject "^error:")

# 1000 CPUID round trips timed by the guest with RDTSC (Bochs' TSC is repeatable).
nestor_boot_test(vmx.cpuid_round_trip vmx TIMEOUT 120 ARGS --emulator bochs --kernel-elf64 ${elf64}
  --append "nestor.builtin-guest=cpuid-bench"
  --expect-status 0
  --expect "^\\[cpuid-bench\\] cpuid round trip \\(ticks per iteration\\): 0x[0-9a-f]{8}$")
