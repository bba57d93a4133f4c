// A read-only memory map of a whole file. Model loaders parse through it and never read past
// size(): every offset taken from a file is checked against size() before use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "longspec/status.h"

namespace longspec {

class MappedFile {
 public:
  static StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace longspec
