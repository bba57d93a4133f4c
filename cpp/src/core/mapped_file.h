// A read-only memory map of a whole file. Model loaders parse through it and never read past
// size(): every offset taken from a file is checked against size() before use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "longspec/status.h"

namespace longspec {

class MappedFile {
 public:
  static StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);
  // Wraps bytes already in memory (tests, fuzzers, data that arrived over a pipe). `name`
  // stands in for the path in error messages.
  static std::shared_ptr<MappedFile> FromBytes(std::string name, std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::vector<uint8_t> owned_;  // FromBytes() storage; empty for a real mapping
  bool mapped_ = false;         // data_ came from mmap and must be unmapped
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace longspec
