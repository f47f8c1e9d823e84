// Private to floodgate_net: a Beast body made of in-memory pieces and files,
// so a multipart upload streams its files in chunks instead of loading them.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/file.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <boost/system/errc.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace floodgate::net::detail {

/// Bytes held in memory, or `file_size` bytes read from `file` while sending.
struct BodyPiece {
  std::string bytes;
  std::filesystem::path file;
  std::uint64_t file_size = 0;
};

/// A Beast Body whose value is a shared, immutable list of pieces (shared so
/// a resent request does not copy them). Content-Length is known up front.
struct PieceBody {
  using value_type = std::shared_ptr<const std::vector<BodyPiece>>;

  static std::uint64_t size(const value_type& pieces) {
    std::uint64_t total = 0;
    if (pieces) {
      for (const auto& piece : *pieces) total += piece.file.empty() ? piece.bytes.size() : piece.file_size;
    }
    return total;
  }

  class writer {
   public:
    using const_buffers_type = boost::asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(const boost::beast::http::header<isRequest, Fields>&, const value_type& pieces) : pieces_(pieces) {}

    void init(boost::system::error_code& ec) { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(boost::system::error_code& ec) {
      ec = {};
      while (pieces_ && index_ < pieces_->size()) {
        const BodyPiece& piece = (*pieces_)[index_];
        if (piece.file.empty()) {
          ++index_;
          if (piece.bytes.empty()) continue;
          return std::pair{boost::asio::buffer(piece.bytes), has_more()};
        }
        if (!file_.is_open()) {
          file_.open(piece.file.string().c_str(), boost::beast::file_mode::scan, ec);
          if (ec) return boost::none;
          remaining_ = piece.file_size;
        }
        if (remaining_ == 0) {
          finish_file(ec);
          if (ec) return boost::none;
          continue;
        }
        if (!chunk_) chunk_ = std::make_unique<char[]>(kChunkSize);
        const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkSize, remaining_));
        const std::size_t n = file_.read(chunk_.get(), wanted, ec);
        if (ec) return boost::none;
        if (n == 0) {  // the file shrank after Content-Length was computed
          ec = boost::system::errc::make_error_code(boost::system::errc::io_error);
          return boost::none;
        }
        remaining_ -= n;
        if (remaining_ == 0) {
          finish_file(ec);
          if (ec) return boost::none;
        }
        return std::pair{boost::asio::const_buffer(chunk_.get(), n), remaining_ > 0 || has_more()};
      }
      return boost::none;
    }

   private:
    static constexpr std::size_t kChunkSize = std::size_t{64} * 1024;

    bool has_more() const { return index_ < pieces_->size(); }
    void finish_file(boost::system::error_code& ec) {
      file_.close(ec);
      ++index_;
    }

    value_type pieces_;
    std::size_t index_ = 0;
    boost::beast::file file_;
    std::uint64_t remaining_ = 0;
    std::unique_ptr<char[]> chunk_;
  };
};

}  // namespace floodgate::net::detail
