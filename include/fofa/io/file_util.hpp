// fofa/io/file_util.hpp — whole-file reads, read-only memory maps and atomic writes.
//
// Every fofa writer goes through write_file_atomic: the bytes go to `OUT.tmp.<pid>`, are
// fsync'ed, then renamed over OUT, so a crash or a full disk never leaves a half-written
// model. FileBytes is the immutable byte storage behind a loaded file: either an owned,
// 64-byte aligned copy or a read-only mmap (POSIX); both keep tensor data 64-byte aligned.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include "fofa/core/aligned.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define FOFA_HAVE_POSIX_IO 1
#else
#define FOFA_HAVE_POSIX_IO 0
#endif

namespace fofa::io {

// Immutable bytes of a loaded file; shared by every object viewing into it.
class FileBytes {
 public:
  virtual ~FileBytes() = default;
  virtual std::span<const std::byte> bytes() const = 0;
  virtual bool is_mapped() const = 0;
};

namespace detail {

class OwnedBytes final : public FileBytes {
 public:
  explicit OwnedBytes(std::size_t n) : buf_(static_cast<index_t>(n)) {}
  unsigned char* data() { return buf_.data(); }
  std::span<const std::byte> bytes() const override {
    return {reinterpret_cast<const std::byte*>(buf_.data()), buf_.bytes()};
  }
  bool is_mapped() const override { return false; }

 private:
  AlignedBuffer<unsigned char> buf_;
};

#if FOFA_HAVE_POSIX_IO
class MappedBytes final : public FileBytes {
 public:
  MappedBytes(void* p, std::size_t n) : p_(p), n_(n) {}
  MappedBytes(const MappedBytes&) = delete;
  MappedBytes& operator=(const MappedBytes&) = delete;
  ~MappedBytes() override { ::munmap(p_, n_); }
  std::span<const std::byte> bytes() const override { return {static_cast<const std::byte*>(p_), n_}; }
  bool is_mapped() const override { return true; }

 private:
  void* p_;
  std::size_t n_;
};

// Closes a POSIX descriptor on scope exit.
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};
#endif

inline std::string errno_text() { return std::strerror(errno); }

#if FOFA_HAVE_POSIX_IO
// Writes every byte, retrying short writes and EINTR; false (errno set) on failure.
inline bool write_all(int fd, std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    if (w == 0) {
      errno = EIO;
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  return true;
}
#endif

}  // namespace detail

// A 64-byte aligned copy of some bytes (what load_from_memory validates against).
inline std::shared_ptr<const FileBytes> copy_bytes(std::span<const std::byte> src) {
  auto owned = std::make_shared<detail::OwnedBytes>(src.size());
  if (!src.empty()) std::memcpy(owned->data(), src.data(), src.size());
  return owned;
}

// Reads a whole file into 64-byte aligned memory.
inline std::shared_ptr<const FileBytes> read_file_bytes(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  FOFA_CHECK(!ec && std::filesystem::exists(status), path.string(), ": cannot open for reading: no such file");
  FOFA_CHECK(std::filesystem::is_regular_file(status), path.string(), ": not a regular file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  FOFA_CHECK(in.good(), path.string(), ": cannot open for reading");
  const std::streamoff size = in.tellg();
  FOFA_CHECK(size >= 0, path.string(), ": cannot determine the file size");
  auto owned = std::make_shared<detail::OwnedBytes>(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0) in.read(reinterpret_cast<char*>(owned->data()), size);
  FOFA_CHECK(in.good() || (size == 0), path.string(), ": read failed after ", in.gcount(), " of ", size, " bytes");
  return owned;
}

// Reads a whole text input (data set, JSON configuration) into a string. `what` names it in
// errors ("data file", "configuration"). Pipes and FIFOs are fine (e.g. <(zcat data.gz)); a
// directory is refused by name (a stream would only fail with "basic_filebuf::underflow").
inline std::string read_text_file(const std::filesystem::path& path, const char* what) {
  std::error_code ec;
  FOFA_CHECK(!std::filesystem::is_directory(path, ec), path.string(), ": is a directory, not a ", what);
  std::ifstream in(path, std::ios::binary);
  FOFA_CHECK(in.good(), "cannot open ", what, " ", path.string(), ": ", detail::errno_text());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FOFA_CHECK(!in.bad(), "error reading ", what, " ", path.string(), ": ", detail::errno_text());
  return text;
}

// Maps a whole file read-only. The mapping is private: later writes to the file by other
// processes are not guaranteed to be invisible, so replace model files by rename (as fofa's
// writers do), never rewrite them in place. Falls back to read_file_bytes without POSIX.
inline std::shared_ptr<const FileBytes> map_file_bytes(const std::filesystem::path& path) {
#if FOFA_HAVE_POSIX_IO
  detail::FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  FOFA_CHECK(fd.fd >= 0, path.string(), ": cannot open for reading: ", detail::errno_text());
  struct stat st {};
  FOFA_CHECK(::fstat(fd.fd, &st) == 0, path.string(), ": stat failed: ", detail::errno_text());
  FOFA_CHECK(S_ISREG(st.st_mode), path.string(), ": not a regular file");
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) return std::make_shared<detail::OwnedBytes>(0);  // mmap cannot map 0 bytes
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  FOFA_CHECK(p != MAP_FAILED, path.string(), ": mmap failed: ", detail::errno_text());
  return std::make_shared<detail::MappedBytes>(p, size);
#else
  return read_file_bytes(path);
#endif
}

namespace detail {
// Where a writer puts the bytes for `path`. A symbolic link is written through to its target (as
// `cp` would), not replaced by a regular file. An existing non-regular file (/dev/null, a FIFO,
// /dev/stdout) is written into as a stream, never replaced by the rename (which would put a
// regular file where /dev/null was). A directory or an empty name is refused.
struct WriteTarget {
  std::filesystem::path path;
  bool stream = false;  // write in place: not atomic, nothing to rename
  bool to_stdout = false;  // the process's standard output: written through fd 1, at its offset
};
}  // namespace detail

// Whether `path` names this process's standard output (/dev/stdout, or the file or pipe that
// stdout is redirected to). Writers then write through stdout itself, and the CLI sends its
// reports to stderr so they do not end up inside the output.
inline bool is_stdout(const std::filesystem::path& path) {
#if FOFA_HAVE_POSIX_IO
  struct stat a {}, b {};
  return !path.empty() && ::stat(path.c_str(), &a) == 0 && ::fstat(1, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
#else
  return path == "/dev/stdout";
#endif
}

namespace detail {
inline WriteTarget write_target(const std::filesystem::path& path) {
  FOFA_CHECK(!path.empty(), "output file name is empty");
  if (is_stdout(path)) return {path, true, true};
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);  // follows links
  FOFA_CHECK(!std::filesystem::is_directory(st), path.string(), ": is a directory, not a file name");
  // Existing and not a regular file (a device, a FIFO, /dev/stdout on a pipe or terminal): written
  // in place through the name as given, so no link needs resolving.
  if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st)) return {path, true};
  // Otherwise the rename must land on the file the name means: follow links one at a time (each
  // relative to its own directory), which also resolves a dangling link to the file it will create.
  std::filesystem::path p = path;
  for (int hops = 0; std::filesystem::is_symlink(p, ec); ++hops) {
    FOFA_CHECK(hops < 40, path.string(), ": too many levels of symbolic links");
    const std::filesystem::path to = std::filesystem::read_symlink(p, ec);
    FOFA_CHECK(!ec, path.string(), ": cannot read the symbolic link ", p.string(), ": ", ec.message());
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  return {p, false};
}
}  // namespace detail

// Whether two names mean the same file: the same file on disk, or, for names not created yet,
// the same absolute path once "." and ".." are resolved.
inline bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec;
  if (std::filesystem::equivalent(a, b, ec)) return true;
  const auto norm = [](const std::filesystem::path& p) {
    std::error_code e;
    return std::filesystem::weakly_canonical(std::filesystem::absolute(p, e), e).lexically_normal();
  };
  return norm(a) == norm(b);
}

// Fails now, with the reason, where write_file_atomic(path, ...) would fail: an empty name, a
// directory or special file, a missing or read-only directory, or a path that is one of the
// command's `inputs` (writing would destroy it). A long job learns it before its work rather
// than after. Creates and removes write_file_atomic's temp file; leaves nothing.
inline void check_writable(const std::filesystem::path& path,
                           std::initializer_list<std::filesystem::path> inputs = {}) {
  const detail::WriteTarget target = detail::write_target(path);
  for (const auto& in : inputs)
    FOFA_CHECK(in.empty() || !same_file(target.path, in), path.string(),
               ": is the same file as the input ", in.string(), "; writing it would destroy that input");
#if FOFA_HAVE_POSIX_IO
  if (target.stream) {  // not opened: closing a probe of a FIFO would end its reader's input (and
                        // writing to a FIFO with no reader waits for one, as a shell redirection does)
    FOFA_CHECK(::access(target.path.c_str(), W_OK) == 0, path.string(), ": cannot be written: ", detail::errno_text());
    return;
  }
  const std::string tmp = target.path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FOFA_CHECK(fd >= 0, path.string(), ": cannot be written: ", detail::errno_text());
  ::close(fd);
  ::unlink(tmp.c_str());
#else
  std::error_code ec;
  if (target.stream) return;
  const std::filesystem::path tmp = target.path.string() + ".tmp";
  FOFA_CHECK(std::ofstream(tmp, std::ios::binary | std::ios::trunc).good(), path.string(), ": cannot be written");
  std::filesystem::remove(tmp, ec);
#endif
}

// Writes `bytes` to `path` atomically: temp file `path.tmp.<pid>`, fsync, rename, fsync dir.
// A symbolic link is written through to its target; an existing device or FIFO is written into
// as a stream (see detail::write_target).
inline void write_file_atomic(const std::filesystem::path& requested, std::span<const std::byte> bytes) {
  const detail::WriteTarget target = detail::write_target(requested);
  const std::filesystem::path& path = target.path;
#if FOFA_HAVE_POSIX_IO
  if (target.to_stdout) {
    FOFA_CHECK(detail::write_all(1, bytes), requested.string(), ": write failed: ", detail::errno_text());
    return;
  }
  if (target.stream) {
    detail::FdGuard fd{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
    FOFA_CHECK(fd.fd >= 0, requested.string(), ": cannot open for writing: ", detail::errno_text());
    FOFA_CHECK(detail::write_all(fd.fd, bytes), requested.string(), ": write failed: ", detail::errno_text());
    return;
  }
  const std::string tmp = path.string() + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FOFA_CHECK(fd >= 0, tmp, ": cannot create: ", detail::errno_text());
  auto fail = [&](const char* what) {
    const std::string reason = detail::errno_text();
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    ::fofa::detail::throw_error("fofa: ", path.string(), ": ", what, ": ", reason);
  };
  if (!detail::write_all(fd, bytes)) fail("write failed");
  if (::fsync(fd) != 0) fail("fsync failed");
  const int rc = ::close(fd);
  fd = -1;
  if (rc != 0) fail("close failed");
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename failed");
  // Persist the rename itself; best effort (some file systems refuse fsync on directories).
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  detail::FdGuard dfd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dfd.fd >= 0) (void)::fsync(dfd.fd);
#else
  const std::filesystem::path tmp = target.stream ? path : std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    FOFA_CHECK(os.good(), tmp.string(), ": cannot create");
    os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    os.flush();
    if (!os.good()) {
      os.close();
      if (!target.stream) std::filesystem::remove(tmp);
      ::fofa::detail::throw_error("fofa: ", path.string(), ": write failed");
    }
  }
  if (!target.stream) std::filesystem::rename(tmp, path);
#endif
}

}  // namespace fofa::io
