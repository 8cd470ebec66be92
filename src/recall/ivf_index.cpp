#include "bluewhale/core/error.h"
#include "recall/index_impl.h"

namespace bluewhale::recall_detail {

std::unique_ptr<Index> make_ivf_index(const IndexOptions&) {
  BW_THROW(ConfigError, "index: kind ivf_sq8 is not implemented yet");
}

}  // namespace bluewhale::recall_detail
