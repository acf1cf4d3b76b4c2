# SVM boot tests: built-in guests under QEMU TCG -cpu EPYC (SVM + NPT, no NRIP save).
nestor_boot_test(svm.smoke_guest svm ARGS --kernel ${elf32} --append "nestor.builtin-guest=smoke nestor.log=debug"
  --expect-status 0
  --expect "^virt: guest smoke starts on svm "
  --expect "^\\[smoke\\] cpuid 0: max leaf 0x[0-9a-f]{8} vendor AuthenticAMD$"
  --expect "^\\[smoke\\] cpuid 40000000: max leaf 0x40000001 signature NestorNestor$"
  --expect "^\\[smoke\\] cpuid 1: hypervisor=1 vmx=0$"
  --expect "^\\[smoke\\] cpuid 80000001: svm=0$"
  --expect "^\\[smoke\\] vmmcall 0: rax=0x00000000$"
  --expect "^\\[smoke\\] vmmcall 0x1234: rax=0x00000001$"
  --expect "^\\[smoke\\] rdmsr 8b: eax=0x00000000$"
  --expect "^\\[smoke\\] rdmsr c0010114: #GP$"
  --expect "^\\[smoke\\] vmrun \\(real mode\\): #UD$"
  --expect "^\\[smoke\\] clgi \\(real mode\\): #UD$"
  --expect "^debug: virt: exit virtualization_instruction \\(code 0x80\\) at rip 0x[0-9a-f]+, length 3$"
  --expect "^debug: virt: exit virtualization_instruction \\(code 0x85\\) at rip 0x[0-9a-f]+, length 3$"
  --expect "^\\[smoke\\] vmrun, clgi \\(protected mode\\): #UD$"
  --expect "^debug: virt: exit cpuid \\(code 0x72\\) at rip 0x[0-9a-f]+, length 2$"
  --expect "^debug: virt: exit hypercall \\(code 0x81\\) at rip 0x[0-9a-f]+, length 3$"
  --expect "^\\[smoke\\] smoke: done, failures 0x00000000$"
  --expect "^virt: guest smoke exited with status 0 \\(exit port\\) after [0-9]+ exits$"
  --reject "^error:"
  --reject "no #")

nestor_boot_test(svm.npf_outside_guest_memory svm ARGS --kernel ${elf32} --append "nestor.builtin-guest=npf"
  --expect-status 1
  --expect "^\\[npf\\] npf: reading guest-physical 0x20000$"
  --expect "^error: virt: guest npf stopped: bad memory access after [0-9]+ exits"
  --expect "^error: virt: guest npf: read of guest-physical 0x20000, outside its memory$"
  --reject "did not stop the guest")

nestor_boot_test(svm.unknown_builtin_guest svm ARGS --kernel ${elf32} --append "nestor.builtin-guest=bogus"
  --expect-status 1 --expect "^error: virt: no built-in guest 'bogus'")

# 1000 CPUID round trips timed by the guest under -icount (instructions per round trip, in hex).
nestor_boot_test(svm.cpuid_round_trip_icount svm ARGS --kernel ${elf32} --append "nestor.builtin-guest=cpuid-bench"
  --icount --expect-status 0
  --expect "^\\[cpuid-bench\\] cpuid round trip \\(ticks per iteration\\): 0x[0-9a-f]{8}$")

# The local APIC timer ends a guest's time slice even though the guest never asks to stop:
# under icount the count of preemptions is exact.
nestor_boot_test(svm.time_slices_preempt_the_guest svm ARGS --kernel ${elf32}
  --append "nestor.builtin-guest=cpuid-bench nestor.time-slice=20000" --icount --expect-status 0
  --expect "^virt: guest cpuid-bench was preempted [1-9][0-9]* times$"
  --expect "^virt: guest cpuid-bench exited with status 0")
