# Nested SVM with L1's own nested paging (label "nested"): an L1 (tests/nested/guests/npt_l1.cpp)
# gives its L2 a nested page table in L1's memory that shows L2 its code, stack, data and page
# tables at L2-physical 0x40000000 (beyond the L1's 16 MiB), and Nestor runs L2 on the shadow NPT
# (components/nested/svm/shadow_npt.*). Each case beside a healthy domain; both finish with 0.

# nestor_npt_boot_test(NAME CASE ARGS ...): tests/nested/appliances/npt_CASE.manifest, the L1
# "l1" running case CASE; ARGS adds what the L1 must print.
function(nestor_npt_boot_test name case)
  cmake_parse_arguments(ARG "" "" "ARGS" ${ARGN})
  nestor_nested_test(${name} MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/npt_${case}.manifest
    GUESTS npt_l1 healthy ARGS
    --expect-status 0
    ${ARG_ARGS}
    --expect "^\\[l1\\] npt ${case}: done$"
    --expect "^appliance: domain l1 exited with status 0 \\(exit port\\)"
    --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
    --expect "^appliance: 2 of 2 domains built, 0 failed or refused$"
    --reject "^error:" --reject "PANIC" --reject "CPU exception"
    --reject "^\\[l1\\] (unexpected|npt:)" --reject "WRONG")
endfunction()

# L2 reads its data page at L2-physical 0x40005000, which only L1's NPT maps (to a frame of L1's
# image), a 4 KiB piece of a 2 MiB leaf and one of a 1 GiB leaf of L1's NPT; the CPUID exits
# bring what it read to L1, and it ran at its own addresses. The walk set Accessed, not Dirty, in
# L1's entry.
nestor_npt_boot_test(nested.npt_l2_runs_through_l1_npt translate ARGS
  --expect "^\\[l1\\] translate: L2-physical 0x40005000 is L1-physical 0x[0-9a-f]+ in L1's NPT$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x4c322d6461746121 read from L2 address 0x40005000$"
  --expect "^\\[l1\\] L1's NPT entry for 0x40005000: accessed 1 dirty 0$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x6c617267652d3221 read from L2 address 0x40523008$"
  --expect "^\\[l1\\] translate: L2-physical 0xc0000000 is a 1 GiB page at L1-physical 0x0$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x6875676521314721 read from L2 address 0xc0600010$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt at L2 rip 0x40001[0-9a-f]{3}$")

# What L1's NPT does not map reaches L1 as exit 0x400 with the #PF-style error code (nested
# walks are user accesses) and the L2-physical address: a read (final address, bit 32), the walk
# of L2's own page table at 0x40013000 (bit 33; QEMU walks to set Accessed, so a write) and an
# instruction fetch. L1 maps each and L2 goes on from the faulting instruction.
nestor_npt_boot_test(nested.npt_unmapped_access_is_npf_to_l1 npf ARGS
  --expect "^\\[l1\\] L2 exit 0x400 npf: exitinfo1 0x100000004 \\(read, not present, user, final address\\), exitinfo2 0x40006000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x6c6174652d6d6170 read from L2 address 0x40006000$"
  --expect "^\\[l1\\] L2 exit 0x400 npf: exitinfo1 0x200000006 \\(write, not present, user, table walk\\), exitinfo2 0x40013000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x4c322d6461746121 read from L2 address 0x40200000$"
  --expect "^\\[l1\\] L2 exit 0x400 npf: exitinfo1 0x100000014 \\(fetch, not present, user, final address\\), exitinfo2 0x40008000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid at L2 rip 0x40008000$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$")

# L1 points L2's data page at another frame of its own and flushes with TLB_CONTROL, then at a
# third with INVLPGA alone (TLB_CONTROL back to 0): L2 reads the new frame each time.
nestor_npt_boot_test(nested.npt_l1_remaps_and_flushes remap ARGS
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x4c322d6461746121 read from L2 address 0x40005000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x72656d6170746c62 read from L2 address 0x40005000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x696e766c70676121 read from L2 address 0x40005000$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$")

# A page L1 maps read-only: L2 reads it, its write is exit 0x400 with present and write set and
# L1's frame unchanged; L1 makes it writable, the write lands in L1's frame, and L1's entry is
# Accessed and Dirty.
nestor_npt_boot_test(nested.npt_write_to_read_only_is_npf readonly ARGS
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x726561642d6f6e6c read from L2 address 0x40007000$"
  --expect "^\\[l1\\] L2 exit 0x400 npf: exitinfo1 0x100000007 \\(write, present, user, final address\\), exitinfo2 0x40007000$"
  --expect "^\\[l1\\] L1's frame still holds 0x726561642d6f6e6c$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0x57726974 read from L2 address 0x40007000$"
  --expect "^\\[l1\\] L1's frame now holds 0x57726974$"
  --expect "^\\[l1\\] L1's NPT entry for 0x40007000: accessed 1 dirty 1$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$")

# L1 runs with EFER.NXE, its L2 without, and L1's NPT maps L2's landing page no-execute: the
# fetch is exit 0x400 with present and fetch (a rights fault, not a reserved bit: the CPU reads
# L1's nested tables in L1's paging mode). L1 allows it and L2 runs there.
nestor_npt_boot_test(nested.npt_no_execute_follows_l1s_nxe nx ARGS
  --expect "^\\[l1\\] nx: L1's EFER.NXE 1, L2's 0, L1's NPT maps 0x40008000 no-execute$"
  --expect "^\\[l1\\] L2 exit 0x400 npf: exitinfo1 0x100000015 \\(fetch, present, user, final address\\), exitinfo2 0x40008000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid at L2 rip 0x40008000$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$")

# L2 reads one word in each of 768 2 MiB regions (all one 2 MiB page of L1's, a large leaf each in
# L1's NPT): one shadow page table per region, more than the 512 tables a vCPU may spend, so the
# shadow starts over under L2 (shadow_npt.hpp). L2 never notices: the sum of what it read is right.
nestor_npt_boot_test(nested.npt_shadow_budget_restart_is_invisible_to_l2 budget ARGS
  --expect "^\\[l1\\] budget: L2 reads one word in each of 768 2 MiB regions from L2-physical 0x80000000$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid: rax 0xd7e80 read from L2 address 0x80000000$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$")

# L1 injects #UD into L2 (EVENTINJ), whose IDT L1's NPT does not map: the delivery's read of the
# gate is exit 0x400 with the event in EXITINTINFO and EVENTINJ's valid bit cleared (as the CPU
# does at every #VMEXIT). L1 maps the IDT and injects the event again; the delivery's faults on
# L2's GDT and stack are Nestor's own (the shadow), which must deliver the event again after
# each: L2's handler runs and reports the RIP the event interrupted, and the event comes once.
nestor_npt_boot_test(nested.npt_event_delivery_survives_npt_faults event ARGS
  --expect "^\\[l1\\] event: L1 injects 0x80000306 \\(#UD\\) into L2, whose IDT at 0x40009000 L1's NPT does not map$"
  --expect "^\\[l1\\] L2 exit 0x400 npf: exitinfo1 0x100000004 \\(read, not present, user, final address\\), exitinfo2 0x40009060$"
  --expect "^\\[l1\\] EXITINTINFO 0x80000306, EVENTINJ 0x306$"
  --expect "^\\[l1\\] L2 exit 0x72 cpuid in L2's handler at L2 rip 0x40001[0-9a-f]{3}: it interrupted L2 rip 0x40001[0-9a-f]{3} \\(L2's entry\\)$"
  --expect "^\\[l1\\] L2 exit 0x78 hlt$")

# Two nested domains at once (case=invlpga and case=marker of npt_l1). The reader's L2 touches 64
# regions (a shadow table each), runs INVLPGA, which its L1 does not intercept, and then reads its
# data page for seconds across L0's preemptions. Meanwhile the writer's L2, whose data page at the
# same L2-physical address holds a marker, runs again and again on a shadow started over, whose
# tables take the first frames the kernel has free. Nestor frees the reader's shadow at its
# INVLPGA: were vmcb02 left on it, the reader's L2 would walk the writer's tables (the kernel hands
# the freed root out again as the writer's) and read the marker. Longer slices than the default
# (the writer maps its pages within one) and a raised watchdog: the reader's loop makes no exit.
nestor_nested_test(nested.npt_l2_invlpga_frees_no_table_in_use
  MANIFEST ${PROJECT_SOURCE_DIR}/tests/nested/appliances/npt_invlpga.manifest
  GUESTS npt_l1 healthy ARGS
  --append "nestor.time-slice=100000000 nestor.watchdog=5000"
  --expect-status 0
  --expect "^\\[reader\\] invlpga: L2 read the other domain's marker 0 times, another wrong value 0 times$"
  --expect "^\\[reader\\] npt invlpga: done$"
  --expect "^\\[writer\\] marker: L2 read 0x4d41524b45522121 in 6 runs of its own$"
  --expect "^\\[writer\\] npt marker: done$"
  --expect "^appliance: domain reader exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain writer exited with status 0 \\(exit port\\)"
  --expect "^appliance: domain healthy exited with status 0 \\(exit port\\)"
  --expect "^appliance: 3 of 3 domains built, 0 failed or refused$"
  --reject "^error:" --reject "PANIC" --reject "CPU exception"
  --reject "^\\[(reader|writer)\\] (unexpected|npt:)" --reject "WRONG")
