// The checks and relocation of a loadable component (module_image.hpp). ELF64 layout from the
// System V ABI (gABI) and its x86-64 supplement; every read is bounds-checked, byte-wise (the boot
// module need not be aligned), and every write lands inside the image the caller gave.
#include "nestor/module/module_image.hpp"

#include "nestor/lib/elf.hpp"

namespace nestor::module {
namespace {

constexpr u64 kElfHeaderBytes = 64;
constexpr u64 kProgramHeaderBytes = 56;
constexpr u64 kSymbolBytes = 24;
constexpr u64 kRelaBytes = 24;
constexpr u64 kDynamicBytes = 16;
constexpr u32 kLoad = elf::kSegmentLoad;
constexpr u32 kDynamic = 2;
constexpr u32 kInterp = 3;
constexpr u32 kTls = 7;
constexpr u32 kGnuRelro = 0x6474e552;
constexpr u32 kFlagExecute = 1;
constexpr u32 kFlagWrite = 2;

constexpr u64 kTagNull = 0, kTagNeeded = 1, kTagPltRelSize = 2, kTagHash = 4, kTagStrtab = 5, kTagSymtab = 6,
              kTagRela = 7, kTagRelaSize = 8, kTagRelaEnt = 9, kTagStrSize = 10, kTagSymEnt = 11, kTagInit = 12,
              kTagFini = 13, kTagRel = 17, kTagPltRel = 20, kTagTextRel = 22, kTagJmpRel = 23, kTagBindNow = 24,
              kTagInitArray = 25, kTagFiniArray = 26, kTagFlags = 30, kTagPreinitArray = 32, kTagFlags1 = 0x6ffffffb;
constexpr u64 kFlagsBindNow = 8;  // DF_BIND_NOW
constexpr u64 kFlags1Now = 1;     // DF_1_NOW

constexpr u32 kRelocNone = 0, kReloc64 = 1, kRelocGlobDat = 6, kRelocJumpSlot = 7, kRelocRelative = 8;
constexpr u16 kSectionUndefined = 0;
constexpr u16 kSectionReserved = 0xff00;  // SHN_LORESERVE: ABS, COMMON...

Failure<ModuleFault> refuse(ModuleError error) {
    ModuleFault fault;
    fault.error = error;
    return fail(fault);
}

u64 read_le(const u8* p, usize bytes) {
    u64 value = 0;
    for (usize i = 0; i < bytes; ++i) value |= u64{p[i]} << (8 * i);
    return value;
}

// [offset, offset + bytes) inside [0, limit)?
bool inside(u64 offset, u64 bytes, u64 limit) {
    u64 end = 0;
    return checked_add(offset, bytes, end) && end <= limit;
}

struct ProgramHeader {
    u32 type;
    u32 flags;
    u64 offset;
    u64 vaddr;
    u64 filesz;
    u64 memsz;
};

ProgramHeader program_header(const u8* file, u64 at) {
    return {static_cast<u32>(read_le(file + at, 4)),
            static_cast<u32>(read_le(file + at + 4, 4)),
            read_le(file + at + 8, 8),
            read_le(file + at + 16, 8),
            read_le(file + at + 32, 8),
            read_le(file + at + 40, 8)};
}

struct Headers {
    u64 phoff;
    u64 phnum;
};

Result<Headers, ModuleFault> read_headers(const u8* file, usize size) {
    if (size < kElfHeaderBytes) return refuse(ModuleError::too_small);
    if (read_le(file, 4) != elf::kMagic) return refuse(ModuleError::not_elf);
    if (file[4] != elf::kClass64 || file[5] != elf::kDataLittleEndian || read_le(file + 18, 2) != elf::kMachineX86_64)
        return refuse(ModuleError::not_elf64_x86_64);
    if (read_le(file + 16, 2) != elf::kTypeShared) return refuse(ModuleError::not_shared_object);
    Headers h{read_le(file + 32, 8), read_le(file + 56, 2)};
    if (read_le(file + 54, 2) != kProgramHeaderBytes || h.phnum == 0 ||
        !inside(h.phoff, h.phnum * kProgramHeaderBytes, size))
        return refuse(ModuleError::bad_program_headers);
    return h;
}

// Splits the read_write region holding the page-aligned RELRO range so that range becomes read.
bool apply_relro(ModulePlan& plan, u64 start, u64 end) {
    for (u32 i = 0; i < plan.region_count; ++i) {
        ImageRegion r = plan.regions[i];
        if (r.access != PageAccess::read_write || start < r.offset || end > r.offset + r.bytes) continue;
        ImageRegion pieces[3] = {{r.offset, start - r.offset, PageAccess::read_write},
                                 {start, end - start, PageAccess::read},
                                 {end, r.offset + r.bytes - end, PageAccess::read_write}};
        u32 count = 0;
        for (const ImageRegion& piece : pieces) count += piece.bytes != 0;
        if (plan.region_count - 1 + count > kMaxRegions) return false;
        for (u32 j = plan.region_count - 1; j > i; --j) plan.regions[j + count - 1] = plan.regions[j];
        u32 at = i;
        for (const ImageRegion& piece : pieces)
            if (piece.bytes != 0) plan.regions[at++] = piece;
        plan.region_count += count - 1;
        return true;
    }
    return false;
}

}  // namespace

const char* module_error_name(ModuleError error) {
    switch (error) {
    case ModuleError::too_small: return "too_small";
    case ModuleError::not_elf: return "not_elf";
    case ModuleError::not_elf64_x86_64: return "not_elf64_x86_64";
    case ModuleError::not_shared_object: return "not_shared_object";
    case ModuleError::bad_program_headers: return "bad_program_headers";
    case ModuleError::segment_outside_file: return "segment_outside_file";
    case ModuleError::segment_unaligned: return "segment_unaligned";
    case ModuleError::segments_overlap: return "segments_overlap";
    case ModuleError::writable_and_executable: return "writable_and_executable";
    case ModuleError::no_loadable_segment: return "no_loadable_segment";
    case ModuleError::image_too_large: return "image_too_large";
    case ModuleError::no_dynamic_section: return "no_dynamic_section";
    case ModuleError::bad_dynamic_section: return "bad_dynamic_section";
    case ModuleError::not_bound_now: return "not_bound_now";
    case ModuleError::unsupported_relocation: return "unsupported_relocation";
    case ModuleError::relocation_outside_image: return "relocation_outside_image";
    case ModuleError::bad_symbol: return "bad_symbol";
    case ModuleError::unresolved_symbol: return "unresolved_symbol";
    case ModuleError::no_entry_symbol: return "no_entry_symbol";
    }
    return "unknown";
}

const Export* ExportTable::find(const char* name, usize name_length) const {
    for (usize i = 0; i < count; ++i) {
        const char* candidate = entries[i].name;
        usize n = 0;
        while (n < name_length && candidate[n] == name[n]) ++n;
        if (n == name_length && candidate[n] == '\0') return &entries[i];
    }
    return nullptr;
}

Result<ModulePlan, ModuleFault> plan_module(const void* data, usize size) {
    const u8* file = static_cast<const u8*>(data);
    auto headers = read_headers(file, size);
    if (!headers) return fail(headers.error());
    ModulePlan plan{};
    u64 end_of_last = 0;
    bool has_dynamic = false;
    bool has_relro = false;
    u64 relro_start = 0, relro_end = 0;
    for (u64 i = 0; i < headers->phnum; ++i) {
        ProgramHeader ph = program_header(file, headers->phoff + i * kProgramHeaderBytes);
        if (ph.type == kInterp || ph.type == kTls) return refuse(ModuleError::bad_program_headers);
        if (ph.type == kDynamic) has_dynamic = true;
        if (ph.type == kGnuRelro) {
            u64 end = 0;
            if (has_relro || !checked_add(ph.vaddr, ph.memsz, end)) return refuse(ModuleError::bad_program_headers);
            has_relro = true;
            relro_start = align_down(ph.vaddr, kPageSize);
            relro_end = align_down(end, kPageSize);
        }
        if (ph.type != kLoad || ph.memsz == 0) continue;
        if (ph.filesz > ph.memsz) return refuse(ModuleError::bad_program_headers);
        if (!inside(ph.offset, ph.filesz, size)) return refuse(ModuleError::segment_outside_file);
        if ((ph.vaddr & (kPageSize - 1)) != (ph.offset & (kPageSize - 1)))
            return refuse(ModuleError::segment_unaligned);
        if ((ph.flags & kFlagWrite) && (ph.flags & kFlagExecute)) return refuse(ModuleError::writable_and_executable);
        u64 end = 0;
        if (!checked_add(ph.vaddr, ph.memsz, end) || end > kMaxImageBytes) return refuse(ModuleError::image_too_large);
        u64 first_page = align_down(ph.vaddr, kPageSize);
        u64 last_page = align_up(end, kPageSize);
        if (first_page < end_of_last) return refuse(ModuleError::segments_overlap);
        if (plan.region_count == kMaxRegions) return refuse(ModuleError::bad_program_headers);
        PageAccess access = (ph.flags & kFlagExecute) ? PageAccess::read_execute
                            : (ph.flags & kFlagWrite) ? PageAccess::read_write
                                                      : PageAccess::read;
        plan.regions[plan.region_count++] = {first_page, last_page - first_page, access};
        end_of_last = last_page;
    }
    if (plan.region_count == 0) return refuse(ModuleError::no_loadable_segment);
    if (!has_dynamic) return refuse(ModuleError::no_dynamic_section);
    plan.image_bytes = end_of_last;
    if (has_relro && relro_end > relro_start && !apply_relro(plan, relro_start, relro_end))
        return refuse(ModuleError::bad_program_headers);
    return plan;
}

namespace {

// The module's dynamic tables, as offsets into the loaded image.
struct Dynamic {
    u64 symtab = 0, strtab = 0, strsz = 0, hash = 0, symbol_count = 0;
    u64 rela = 0, relasz = 0, jmprel = 0, pltrelsz = 0;
    bool has_symtab = false, has_strtab = false, has_hash = false, bound_now = false;
    u64 relaent = kRelaBytes, syment = kSymbolBytes, pltrel = kTagRela;
};

class Loader {
public:
    Loader(const u8* file, const ModulePlan& plan, u8* image, u64 base, const ExportTable& exports)
        : file_(file), plan_(plan), image_(image), base_(base), exports_(exports) {}

    Status<ModuleFault> copy_segments(u64 phoff, u64 phnum);
    Status<ModuleFault> read_dynamic();
    Status<ModuleFault> relocate(u64 table, u64 bytes);
    Result<u64, ModuleFault> find_entry(const char* entry);
    const Dynamic& dynamic() const { return dyn_; }

private:
    bool writable(u64 offset) const {
        for (u32 i = 0; i < writable_count_; ++i)
            if (offset >= writable_[i].offset && inside(offset - writable_[i].offset, 8, writable_[i].bytes))
                return true;
        return false;
    }
    Result<u64, ModuleFault> symbol_value(u64 index, bool undefined_allowed);
    // The symbol's name as [name, name + length) inside the string table, or false.
    bool symbol_name(u64 index, const char*& name, usize& length) const;

    const u8* file_;
    const ModulePlan& plan_;
    u8* image_;
    u64 base_;
    const ExportTable& exports_;
    Dynamic dyn_;
    u64 dynamic_offset_ = 0, dynamic_bytes_ = 0;
    ImageRegion writable_[kMaxRegions] = {};  // the PT_LOADs relocations may write (RELRO included)
    u32 writable_count_ = 0;
};

Status<ModuleFault> Loader::copy_segments(u64 phoff, u64 phnum) {
    for (u64 i = 0; i < phnum; ++i) {
        ProgramHeader ph = program_header(file_, phoff + i * kProgramHeaderBytes);
        if (ph.type == kDynamic) {
            if (!inside(ph.vaddr, ph.memsz, plan_.image_bytes)) return refuse(ModuleError::bad_dynamic_section);
            dynamic_offset_ = ph.vaddr;
            dynamic_bytes_ = ph.memsz;
        }
        if (ph.type != kLoad || ph.memsz == 0) continue;
        // plan_module() checked these bounds for the same file.
        copy_bytes(image_ + ph.vaddr, file_ + ph.offset, ph.filesz);
        if ((ph.flags & kFlagWrite) && writable_count_ < kMaxRegions)
            writable_[writable_count_++] = {ph.vaddr, ph.memsz, PageAccess::read_write};
    }
    return {};
}

Status<ModuleFault> Loader::read_dynamic() {
    const u64 image_bytes = plan_.image_bytes;
    for (u64 at = 0; at + kDynamicBytes <= dynamic_bytes_; at += kDynamicBytes) {
        u64 tag = read_le(image_ + dynamic_offset_ + at, 8);
        u64 value = read_le(image_ + dynamic_offset_ + at + 8, 8);
        switch (tag) {
        case kTagNull: at = dynamic_bytes_; break;
        case kTagSymtab: dyn_.symtab = value, dyn_.has_symtab = true; break;
        case kTagStrtab: dyn_.strtab = value, dyn_.has_strtab = true; break;
        case kTagStrSize: dyn_.strsz = value; break;
        case kTagHash: dyn_.hash = value, dyn_.has_hash = true; break;
        case kTagSymEnt: dyn_.syment = value; break;
        case kTagRela: dyn_.rela = value; break;
        case kTagRelaSize: dyn_.relasz = value; break;
        case kTagRelaEnt: dyn_.relaent = value; break;
        case kTagJmpRel: dyn_.jmprel = value; break;
        case kTagPltRelSize: dyn_.pltrelsz = value; break;
        case kTagPltRel: dyn_.pltrel = value; break;
        case kTagBindNow: dyn_.bound_now = true; break;
        case kTagFlags: dyn_.bound_now |= (value & kFlagsBindNow) != 0; break;
        case kTagFlags1: dyn_.bound_now |= (value & kFlags1Now) != 0; break;
        // Another library to load, code the kernel would have to run, or relocations of text or
        // without addends: none of them is what a component is built as.
        case kTagNeeded:
        case kTagInit:
        case kTagFini:
        case kTagInitArray:
        case kTagFiniArray:
        case kTagPreinitArray:
        case kTagTextRel:
        case kTagRel: return refuse(ModuleError::bad_dynamic_section);
        default: break;  // hashes, versions, counts: not needed
        }
    }
    if (!dyn_.has_symtab || !dyn_.has_strtab || !dyn_.has_hash || dyn_.syment != kSymbolBytes ||
        dyn_.relaent != kRelaBytes || dyn_.pltrel != kTagRela || dyn_.relasz % kRelaBytes != 0 ||
        dyn_.pltrelsz % kRelaBytes != 0 || !inside(dyn_.strtab, dyn_.strsz, image_bytes) ||
        !inside(dyn_.hash, 8, image_bytes) || !inside(dyn_.rela, dyn_.relasz, image_bytes) ||
        !inside(dyn_.jmprel, dyn_.pltrelsz, image_bytes))
        return refuse(ModuleError::bad_dynamic_section);
    if (!dyn_.bound_now) return refuse(ModuleError::not_bound_now);
    dyn_.symbol_count = read_le(image_ + dyn_.hash + 4, 4);  // nchain: one per symbol
    if (dyn_.symbol_count > image_bytes / kSymbolBytes ||
        !inside(dyn_.symtab, dyn_.symbol_count * kSymbolBytes, image_bytes))
        return refuse(ModuleError::bad_dynamic_section);
    return {};
}

bool Loader::symbol_name(u64 index, const char*& name, usize& length) const {
    u64 offset = read_le(image_ + dyn_.symtab + index * kSymbolBytes, 4);
    if (offset >= dyn_.strsz) return false;
    const char* start = reinterpret_cast<const char*>(image_ + dyn_.strtab + offset);
    for (length = 0; offset + length < dyn_.strsz; ++length)
        if (start[length] == '\0') {
            name = start;
            return true;
        }
    return false;
}

Result<u64, ModuleFault> Loader::symbol_value(u64 index, bool undefined_allowed) {
    if (index == 0 || index >= dyn_.symbol_count) return refuse(ModuleError::bad_symbol);
    const u8* symbol = image_ + dyn_.symtab + index * kSymbolBytes;
    u16 section = static_cast<u16>(read_le(symbol + 6, 2));
    u64 value = read_le(symbol + 8, 8);
    if (section != kSectionUndefined) {
        if (section >= kSectionReserved || value >= plan_.image_bytes) return refuse(ModuleError::bad_symbol);
        return base_ + value;
    }
    const char* name = nullptr;
    usize length = 0;
    if (!undefined_allowed || !symbol_name(index, name, length) || length == 0) return refuse(ModuleError::bad_symbol);
    if (const Export* e = exports_.find(name, length)) return static_cast<u64>(e->address);
    ModuleFault fault;
    fault.error = ModuleError::unresolved_symbol;
    usize n = 0;
    for (; n < length && n + 1 < kSymbolNameBytes; ++n)
        fault.symbol[n] = (name[n] >= 0x20 && name[n] < 0x7f) ? name[n] : '?';
    fault.symbol[n] = '\0';
    return fail(fault);
}

Status<ModuleFault> Loader::relocate(u64 table, u64 bytes) {
    for (u64 at = 0; at < bytes; at += kRelaBytes) {
        const u8* rela = image_ + table + at;
        u64 offset = read_le(rela, 8);
        u64 info = read_le(rela + 8, 8);
        u64 addend = read_le(rela + 16, 8);
        u32 type = static_cast<u32>(info);
        u64 symbol = info >> 32;
        u64 value = 0;
        switch (type) {
        case kRelocNone: continue;
        case kRelocRelative:
            if (symbol != 0) return refuse(ModuleError::bad_symbol);
            value = base_ + addend;
            break;
        case kReloc64:
        case kRelocGlobDat:
        case kRelocJumpSlot: {
            auto resolved = symbol_value(symbol, true);
            if (!resolved) return fail(resolved.error());
            value = *resolved + (type == kReloc64 ? addend : 0);
            break;
        }
        default: return refuse(ModuleError::unsupported_relocation);
        }
        if (!writable(offset)) return refuse(ModuleError::relocation_outside_image);
        for (int i = 0; i < 8; ++i) image_[offset + i] = static_cast<u8>(value >> (8 * i));
    }
    return {};
}

Result<u64, ModuleFault> Loader::find_entry(const char* entry) {
    usize entry_length = 0;
    while (entry[entry_length]) ++entry_length;
    for (u64 i = 1; i < dyn_.symbol_count; ++i) {
        const char* name = nullptr;
        usize length = 0;
        if (!symbol_name(i, name, length) || length != entry_length) continue;
        bool same = true;
        for (usize n = 0; n < length && same; ++n) same = name[n] == entry[n];
        if (!same) continue;
        if (read_le(image_ + dyn_.symtab + i * kSymbolBytes + 6, 2) == kSectionUndefined) continue;
        return symbol_value(i, false);
    }
    return refuse(ModuleError::no_entry_symbol);
}

}  // namespace

Result<u64, ModuleFault> load_module(const void* data, usize size, const ModulePlan& plan, u8* image, u64 base,
                                     const ExportTable& exports, const char* entry) {
    const u8* file = static_cast<const u8*>(data);
    auto headers = read_headers(file, size);
    if (!headers) return fail(headers.error());
    Loader loader(file, plan, image, base, exports);
    if (auto copied = loader.copy_segments(headers->phoff, headers->phnum); !copied) return fail(copied.error());
    if (auto dynamic = loader.read_dynamic(); !dynamic) return fail(dynamic.error());
    if (auto relocated = loader.relocate(loader.dynamic().rela, loader.dynamic().relasz); !relocated)
        return fail(relocated.error());
    if (auto relocated = loader.relocate(loader.dynamic().jmprel, loader.dynamic().pltrelsz); !relocated)
        return fail(relocated.error());
    return loader.find_entry(entry);
}

}  // namespace nestor::module
