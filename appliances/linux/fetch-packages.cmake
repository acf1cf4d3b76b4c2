# cmake -DOUT=DIR -P fetch-packages.cmake: Debian's cloud kernel and busybox-static, unpacked with
# `dpkg-deb -x` into DIR/root, leaving DIR/vmlinuz, DIR/busybox and DIR/packages.txt (the .deb
# files used). linux-image-cloud-amd64 is a metapackage: the kernel is the versioned package it
# depends on, resolved here from the machine's package lists.
#
# The .deb files are kept in a download cache outside the build tree, so that `rm -rf build` does
# not download them again: $NESTOR_CACHE_DIR, else $XDG_CACHE_HOME/nestor, else ~/.cache/nestor
# (subdirectory debian/). A file is named by its package and version (as apt names it) and used
# only if its SHA-256 is the one the package lists give. `apt-get download` needs no root. When
# apt cannot tell the packages (its lists are missing or stale) or cannot download them (no
# network), the packages this cache used last are taken with a warning; with nothing cached
# either, the build fails and says what to do.
cmake_minimum_required(VERSION 3.25)
foreach(tool apt-get apt-cache dpkg-deb)
  find_program(tool_${tool} ${tool})
  if(NOT tool_${tool})
    message(FATAL_ERROR "the linux appliance's images come from Debian packages: ${tool} is missing")
  endif()
endforeach()

if(DEFINED ENV{NESTOR_CACHE_DIR} AND NOT "$ENV{NESTOR_CACHE_DIR}" STREQUAL "")
  set(cache $ENV{NESTOR_CACHE_DIR}/debian)
elseif(DEFINED ENV{XDG_CACHE_HOME} AND IS_ABSOLUTE "$ENV{XDG_CACHE_HOME}")
  set(cache $ENV{XDG_CACHE_HOME}/nestor/debian)
elseif(DEFINED ENV{HOME} AND IS_DIRECTORY "$ENV{HOME}")
  set(cache $ENV{HOME}/.cache/nestor/debian)
else()
  set(cache ${OUT}/cache)
endif()
file(MAKE_DIRECTORY ${cache})
set(last_used ${cache}/last-used.txt)  # the .deb files the latest successful fetch used

set(no_packages_help "The linux tests and the linux appliance need Debian's linux-image-cloud-amd64 and \
busybox-static once (then they are kept in ${cache}). Make sure this machine reaches its Debian mirror \
and that apt's package lists are current: `sudo apt-get update` (./nestor install runs it when the lists \
lack these packages).")

# Sets ${out} to the "'URI' FILE SIZE SHA256:HASH" lines of the packages, or fails with ${error}.
function(resolve_packages out error)
  execute_process(COMMAND ${tool_apt-cache} depends --important linux-image-cloud-amd64
                  OUTPUT_VARIABLE depends RESULT_VARIABLE status ERROR_VARIABLE apt_error)
  string(REGEX MATCH "Depends: (linux-image-[0-9][^ \n]*-cloud-amd64)" found "${depends}")
  if(NOT status EQUAL 0 OR NOT found)
    set(${error} "apt cannot resolve linux-image-cloud-amd64's kernel package (are its lists there?) ${apt_error}"
        PARENT_SCOPE)
    return()
  endif()
  execute_process(COMMAND ${tool_apt-get} download --print-uris -q ${CMAKE_MATCH_1} busybox-static
                  OUTPUT_VARIABLE uris RESULT_VARIABLE status ERROR_VARIABLE apt_error)
  if(NOT status EQUAL 0)
    set(${error} "apt-get download --print-uris ${CMAKE_MATCH_1} busybox-static: ${apt_error}" PARENT_SCOPE)
    return()
  endif()
  string(REGEX MATCHALL "'[^']+' [^ \n]+\\.deb [0-9]+ SHA256:[0-9a-f]+" lines "${uris}")
  list(LENGTH lines count)
  if(NOT count EQUAL 2)
    set(${error} "apt-get download --print-uris gave no SHA-256 for both packages: ${uris}" PARENT_SCOPE)
    return()
  endif()
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

# Puts the package of one --print-uris line in the cache unless it is there already; sets ${file}
# to its name, or ${error}.
function(cache_package line file error)
  string(REGEX MATCH "^'([^']+)' ([^ ]+) [0-9]+ SHA256:([0-9a-f]+)$" ignored "${line}")
  set(uri ${CMAKE_MATCH_1})
  set(name ${CMAKE_MATCH_2})
  set(sha256 ${CMAKE_MATCH_3})
  set(${file} ${name} PARENT_SCOPE)
  if(EXISTS ${cache}/${name})
    file(SHA256 ${cache}/${name} cached)
    if(cached STREQUAL sha256)
      return()
    endif()
  endif()
  string(REGEX MATCH "^([^_]+)_([^_]+)_" ignored ${name})
  string(REPLACE "%3a" ":" version "${CMAKE_MATCH_2}")
  set(package_version ${CMAKE_MATCH_1}=${version})
  set(partial ${cache}/partial)
  file(REMOVE_RECURSE ${partial})
  file(MAKE_DIRECTORY ${partial})
  message(STATUS "Downloading ${name} into ${cache}")
  # apt-get first (it knows the machine's proxies and mirrors), then the URI directly.
  execute_process(COMMAND ${tool_apt-get} download -q ${package_version} WORKING_DIRECTORY ${partial}
                  RESULT_VARIABLE status OUTPUT_QUIET ERROR_VARIABLE apt_error)
  if(NOT EXISTS ${partial}/${name})
    file(DOWNLOAD ${uri} ${partial}/${name} STATUS download TIMEOUT 600)
    list(GET download 0 status)
    if(NOT status EQUAL 0)
      list(GET download 1 why)
      file(REMOVE_RECURSE ${partial})
      set(${error} "cannot download ${package_version}: ${apt_error}and ${uri}: ${why}" PARENT_SCOPE)
      return()
    endif()
  endif()
  file(SHA256 ${partial}/${name} downloaded)
  if(NOT downloaded STREQUAL sha256)
    file(REMOVE_RECURSE ${partial})
    set(${error} "${name} from ${uri} does not have the SHA-256 its package lists give" PARENT_SCOPE)
    return()
  endif()
  file(RENAME ${partial}/${name} ${cache}/${name})
  file(REMOVE_RECURSE ${partial})
endfunction()

set(problem "")
resolve_packages(lines problem)
set(debs "")
foreach(line IN LISTS lines)
  if(problem STREQUAL "")
    cache_package("${line}" deb problem)
    list(APPEND debs ${deb})
  endif()
endforeach()
if(NOT problem STREQUAL "")
  set(debs "")
  if(EXISTS ${last_used})
    file(STRINGS ${last_used} debs)
  endif()
  set(all_there TRUE)
  foreach(deb IN LISTS debs)
    if(NOT EXISTS ${cache}/${deb})
      set(all_there FALSE)
    endif()
  endforeach()
  if(debs STREQUAL "" OR NOT all_there)
    message(FATAL_ERROR "${problem}\n${no_packages_help}")
  endif()
  message(WARNING "${problem}\nUsing the packages cached earlier in ${cache}: ${debs}")
endif()
list(JOIN debs "\n" listed)
file(WRITE ${last_used} "${listed}\n")

file(REMOVE_RECURSE ${OUT}/root)
file(MAKE_DIRECTORY ${OUT}/root)
foreach(deb IN LISTS debs)
  execute_process(COMMAND ${tool_dpkg-deb} -x ${cache}/${deb} ${OUT}/root RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "dpkg-deb -x ${cache}/${deb} failed")
  endif()
endforeach()

file(GLOB kernels ${OUT}/root/boot/vmlinuz-*)
list(LENGTH kernels count)
if(NOT count EQUAL 1 OR NOT EXISTS ${OUT}/root/bin/busybox)
  message(FATAL_ERROR "the packages did not hold one /boot/vmlinuz-* and /bin/busybox: ${kernels}")
endif()
file(COPY_FILE ${kernels} ${OUT}/vmlinuz)
file(COPY_FILE ${OUT}/root/bin/busybox ${OUT}/busybox)
file(WRITE ${OUT}/packages.txt "${listed}\n")
