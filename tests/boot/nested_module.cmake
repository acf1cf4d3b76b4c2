# NESTED_VIRT=MODULE (label "nested"): one kernel image boots the demo with the nested module (the
# nested domain runs its L2) and, for each cause of refusal, without it: the banner says why, the
# nested domain is refused with that reason, the other domains run.
set(module_dir ${NESTOR_KERNEL_NESTED_MODULE_DIR})
set(module_elf32 ${module_dir}/nestor.elf32)
set(module_file ${module_dir}/nested.module)
set(demo_guests "${module_dir}/guests/demo_hello.elf demo_hello,${module_dir}/guests/demo_ping.elf demo_ping,${module_dir}/guests/demo_l1.elf demo_l1")

set(demo_text ${CMAKE_CURRENT_BINARY_DIR}/module_demo.manifest)
nestor_manifest_loading_nested(${demo_text} ${PROJECT_SOURCE_DIR}/appliances/demo.manifest)
# nestor_module_demo_manifest(NAME COMPONENT_FILE): the demo naming the nested module, packed with
# COMPONENT_FILE's size and SHA-256; ${NAME}_manifest is the packed file.
function(nestor_module_demo_manifest name component)
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${name}.bin)
  nestor_pack_manifest(OUTPUT ${bin} MANIFEST ${demo_text} NESTED on NESTED_MODULE ${component})
  add_custom_target(pack_${name} ALL DEPENDS ${bin})
  set(${name}_manifest ${bin} PARENT_SCOPE)
endfunction()
nestor_module_demo_manifest(module_demo ${module_file})
nestor_module_demo_manifest(module_demo_wrong_version ${module_dir}/tests/nested_wrong_version.module)
nestor_module_demo_manifest(module_demo_wrong_fingerprint ${module_dir}/tests/nested_wrong_fingerprint.module)
nestor_module_demo_manifest(module_demo_unresolved ${module_dir}/tests/nested_unresolved.module)
set(not_elf ${PROJECT_SOURCE_DIR}/tests/nested/module/not_an_elf.module)
nestor_module_demo_manifest(module_demo_corrupt ${not_elf})
set(plain_demo ${CMAKE_CURRENT_BINARY_DIR}/module_demo_without_component.bin)
nestor_pack_manifest(OUTPUT ${plain_demo} MANIFEST ${PROJECT_SOURCE_DIR}/appliances/demo.manifest NESTED on)
add_custom_target(pack_module_demo_without_component ALL DEPENDS ${plain_demo})

nestor_boot_test(nested.module_demo_runs_l2 nested ARGS --kernel ${module_elf32}
  --initrd "${module_demo_manifest} manifest,${demo_guests},${module_file} nested"
  --expect-status 0
  --expect "^build: NESTED_VIRT=MODULE "
  --expect "^nested: module loaded \\([0-9]+ bytes\\)$"
  --expect "^nested: available$"
  --expect "^\\[nested\\] L2: hello from a guest of a guest"
  --expect "^appliance: 3 of 3 domains built, 0 failed or refused$"
  --reject "^error:")

# nestor_module_refused_test(NAME REASON MANIFEST INITRD_EXTRA): the demo on the MODULE kernel with
# the module refused for REASON (a regular expression): the nested domain is refused with it, the
# other two run.
function(nestor_module_refused_test name reason manifest extra)
  nestor_boot_test(${name} nested ARGS --kernel ${module_elf32}
    --initrd "${manifest} manifest,${demo_guests}${extra}"
    --expect-status 1
    --expect "^nested: module not loaded \\(${reason}\\)$"
    --expect "^nested: unavailable \\(nested module not loaded: ${reason}\\)$"
    --expect "^error: appliance: domain nested refused: it asks for nested virtualization, which this build on this CPU cannot offer \\(nested module not loaded: ${reason}\\)$"
    --expect "^appliance: domain hello exited with status 0 \\(exit port\\)"
    --expect "^appliance: domain ping exited with status 0 \\(exit port\\)"
    --expect "^appliance: 2 of 3 domains built, 1 failed or refused$"
    --reject "^\\[nested\\]")
endfunction()

nestor_module_refused_test(nested.module_missing_refused "no boot module \"nested\"" ${module_demo_manifest} "")
nestor_module_refused_test(nested.module_not_in_manifest_refused "the manifest names no nested component"
  ${plain_demo} ",${module_file} nested")
# The manifest was packed for the real module; the boot module is another file.
nestor_module_refused_test(nested.module_hash_mismatch_refused
  "hash mismatch \\(not the module the manifest was packed with\\)" ${module_demo_manifest}
  ",${module_dir}/tests/nested_wrong_version.module nested")
nestor_module_refused_test(nested.module_corrupt_image_refused "corrupt image: not_elf" ${module_demo_corrupt_manifest}
  ",${not_elf} nested")
nestor_module_refused_test(nested.module_wrong_version_refused "wrong interface version 14, the kernel's is 13"
  ${module_demo_wrong_version_manifest} ",${module_dir}/tests/nested_wrong_version.module nested")
nestor_module_refused_test(nested.module_wrong_fingerprint_refused
  "wrong layout fingerprint \\(built against other kernel structures\\)" ${module_demo_wrong_fingerprint_manifest}
  ",${module_dir}/tests/nested_wrong_fingerprint.module nested")
nestor_module_refused_test(nested.module_unresolved_symbol_refused "unresolved symbol nestor_not_exported"
  ${module_demo_unresolved_manifest} ",${module_dir}/tests/nested_unresolved.module nested")
