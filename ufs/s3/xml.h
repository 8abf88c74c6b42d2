// A small XML reader for S3 responses (ListObjectsV2, Error). It builds a
// tree of elements with their text; attributes, comments, processing
// instructions and DOCTYPE are skipped; entities and CDATA are decoded.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/base/status.h"

namespace strata::ufs::s3 {

struct XmlNode {
  std::string name;  // local name, namespace prefix dropped
  std::string text;  // concatenated character data directly inside
  std::vector<XmlNode> children;

  // First child with this name, or nullptr.
  const XmlNode* Child(std::string_view child_name) const;
  // Text of the first child with this name, or "".
  std::string ChildText(std::string_view child_name) const;
};

Result<XmlNode> ParseXml(std::string_view doc);

}  // namespace strata::ufs::s3
