// /proc/PID: process instances, maps, threads, mapped modules, memory via /proc/PID/mem.
// Host-only (reads the running system), arch-neutral.
#pragma once

#include "common/bytes.hpp"
#include "elf/elf_file.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hp::proc {

using Pid = pid_t;

// PID + start time (field 22 of /proc/PID/stat, clock ticks since boot): a PID that was
// reused names another instance.
struct Instance {
    Pid pid = 0;
    std::uint64_t start_time = 0;
    bool operator==(const Instance&) const = default;
};
// Throws Error(NoSuchProcess) naming the PID when it does not exist (or is a zombie:
// Error(ProcessExited)). A process whose main thread exited (pthread_exit) while other
// threads run is alive: its leader shows as a zombie, but it is not one. The /proc readers
// below then use a live thread's /proc/PID/task/TID view of the memory.
Instance instance(Pid pid);

struct Mapping {
    std::uint64_t start = 0, end = 0, offset = 0;
    std::string perms; // "r-xp"
    std::string dev;
    std::uint64_t inode = 0;
    std::string path; // "" for anonymous, "[stack]", "/usr/lib/...", "/memfd:hotpatch:x (deleted)"
    bool readable() const { return perms.size() > 0 && perms[0] == 'r'; }
    bool writable() const { return perms.size() > 1 && perms[1] == 'w'; }
    bool executable() const { return perms.size() > 2 && perms[2] == 'x'; }
};
std::vector<Mapping> read_maps(Pid pid);
// Bytes [from, from + len) of a file-backed mapping, read from the file behind it (as
// map_files or the same inode through /proc/PID/root give it): unlike /proc/PID/mem, this
// does not fault pages into the process. nullopt when the file cannot be read.
std::optional<Bytes> read_mapping_file(Pid pid, const Mapping& m, std::uint64_t from,
                                       std::size_t len);
// The same file, open once for many reads (a search through a whole library).
class MappingFile {
  public:
    MappingFile(Pid pid, const Mapping& m); // !ok() when the file cannot be opened
    ~MappingFile();
    MappingFile(const MappingFile&) = delete;
    MappingFile& operator=(const MappingFile&) = delete;
    bool ok() const { return fd_ >= 0; }
    // Bytes [from, from + len) of the mapping into `out`, resized to what was read (less
    // past the end of the file). False on a read error.
    bool read(std::uint64_t from, std::size_t len, Bytes& out) const;

  private:
    int fd_ = -1;
    std::uint64_t size_ = 0, offset_ = 0;
};

// Thread ids from /proc/PID/task.
std::vector<Pid> threads(Pid pid);
// The thread's state letter from /proc/PID/task/TID/stat ('R', 'S', 'D', 't', 'Z', ...);
// 'X' when the thread no longer exists.
char thread_state(Pid pid, Pid tid);
// First field of /proc/PID/task/TID/syscall: the syscall number the thread is blocked in,
// -1 when running in user space, nullopt when unknown ("running" or unreadable).
std::optional<long> thread_syscall(Pid pid, Pid tid);
// The name (comm) of a process, for messages ("?" when unreadable).
std::string comm(Pid pid);
// TracerPid of /proc/PID/task/TID/status (TID 0: the main thread): the thread id of the
// tracer, 0 when not traced; nullopt when unreadable (the thread is gone).
std::optional<Pid> tracer_pid(Pid pid, Pid tid = 0);

// Memory through /proc/PID/mem (pread/pwrite). Writes reach read-only pages (the kernel's
// FOLL_FORCE), as a debugger's do.
class Memory {
  public:
    explicit Memory(Pid pid, bool writable = false);
    ~Memory();
    Memory(const Memory&) = delete;
    Memory& operator=(const Memory&) = delete;

    Pid pid() const { return pid_; }
    // All of [addr, addr+len) or throws Error(Io / ProcessExited) naming PID and address.
    Bytes read(std::uint64_t addr, std::size_t len) const;
    // False on any failure or short read.
    bool read_fallible(std::uint64_t addr, std::uint8_t* out, std::size_t len) const;
    std::uint64_t read_u64(std::uint64_t addr) const;
    // One pwrite of all bytes (a site is written in one call); throws on failure.
    void write(std::uint64_t addr, ByteView data) const;

  private:
    Pid pid_;
    int fd_ = -1;
};

// A mapped ELF file of the process (the executable or a shared library).
struct Module {
    std::string path;        // as /proc/PID/maps names it
    std::string build_id;    // lowercase hex, "" if none
    std::uint64_t bias = 0;  // load bias: runtime address = file vaddr + bias
    std::uint64_t start = 0; // lowest mapped address of the module
    std::uint64_t end = 0;   // highest
    std::string map_file;    // /proc/PID/map_files/START-END of its offset-0 mapping
    bool deleted = false;    // the mapped file was replaced or removed on disk
};
// Every mapped ELF module, read through /proc/PID/map_files (the mapped file, not the path
// on disk): only the headers and the build-id note are read. The executable comes first,
// then the others in address order. A module starts at a file mapping with offset 0 and
// takes the later mappings of the same file (path and inode), so a file loaded twice
// (dlmopen) is two modules. Opening map_files needs CAP_SYS_ADMIN (or
// CAP_CHECKPOINT_RESTORE); without it the path is opened through /proc/PID/root and used
// only if it is still the mapped inode. Files that are not 64-bit little-endian ELF (locale
// archives, data files), device mappings, memfd and SysV shm are skipped.
std::vector<Module> modules(Pid pid, const std::vector<Mapping>& maps);
// The whole mapped file of a module, parsed (through map_files, with the same fallback).
// A file that does not parse throws Error(NotEligible): it cannot be patched.
elf::ElfFile open_module(const Module& m);

} // namespace hp::proc
