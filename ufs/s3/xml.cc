#include "ufs/s3/xml.h"

#include <cstdlib>

namespace strata::ufs::s3 {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(std::string_view doc) : s_(doc) {}

  Result<XmlNode> Document() {
    SkipMisc();
    XmlNode root;
    Status st = Element(&root, 0);
    if (!st.ok()) return st;
    SkipMisc();
    if (pos_ != s_.size()) return Error("trailing content after the root element");
    return root;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::Corrupt("xml: " + what + " at byte " + std::to_string(pos_));
  }
  bool StartsWith(std::string_view p) const { return s_.substr(pos_, p.size()) == p; }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' ||
                                s_[pos_] == '\t'))
      pos_++;
  }
  // Skips whitespace, <?...?>, <!--...--> and <!DOCTYPE ...>.
  void SkipMisc() {
    for (;;) {
      SkipSpace();
      size_t end;
      if (StartsWith("<?")) end = s_.find("?>", pos_), end = end == s_.npos ? end : end + 2;
      else if (StartsWith("<!--")) end = s_.find("-->", pos_), end = end == s_.npos ? end : end + 3;
      else if (StartsWith("<!DOCTYPE")) end = s_.find('>', pos_), end = end == s_.npos ? end : end + 1;
      else return;
      pos_ = end == s_.npos ? s_.size() : end;
    }
  }
  std::string Name() {
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != '>' && s_[pos_] != '/' && s_[pos_] != ' ' &&
           s_[pos_] != '\n' && s_[pos_] != '\r' && s_[pos_] != '\t')
      pos_++;
    std::string_view n = s_.substr(start, pos_ - start);
    size_t colon = n.find(':');
    if (colon != n.npos) n = n.substr(colon + 1);
    return std::string(n);
  }
  Status DecodeText(std::string_view raw, std::string* out) {
    for (size_t i = 0; i < raw.size(); i++) {
      if (raw[i] != '&') {
        out->push_back(raw[i]);
        continue;
      }
      size_t semi = raw.find(';', i);
      if (semi == raw.npos) return Error("unterminated entity");
      std::string_view ent = raw.substr(i + 1, semi - i - 1);
      if (ent == "amp") out->push_back('&');
      else if (ent == "lt") out->push_back('<');
      else if (ent == "gt") out->push_back('>');
      else if (ent == "quot") out->push_back('"');
      else if (ent == "apos") out->push_back('\'');
      else if (!ent.empty() && ent[0] == '#') {
        std::string num(ent.substr(1));
        unsigned long cp = (num.size() > 1 && (num[0] == 'x' || num[0] == 'X'))
                               ? std::strtoul(num.c_str() + 1, nullptr, 16)
                               : std::strtoul(num.c_str(), nullptr, 10);
        AppendUtf8(cp, out);
      } else {
        return Error("unknown entity &" + std::string(ent) + ";");
      }
      i = semi;
    }
    return Status::OK();
  }
  static void AppendUtf8(unsigned long cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  Status Element(XmlNode* node, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    if (!StartsWith("<")) return Error("expected '<'");
    pos_++;
    node->name = Name();
    if (node->name.empty()) return Error("empty element name");
    // Attributes are skipped; quoted values may hold '>' or '/'.
    while (pos_ < s_.size() && s_[pos_] != '>' && !StartsWith("/>")) {
      if (s_[pos_] == '"' || s_[pos_] == '\'') {
        size_t end = s_.find(s_[pos_], pos_ + 1);
        if (end == s_.npos) return Error("unterminated attribute");
        pos_ = end + 1;
      } else {
        pos_++;
      }
    }
    if (pos_ >= s_.size()) return Error("unterminated start tag");
    if (StartsWith("/>")) {
      pos_ += 2;
      return Status::OK();
    }
    pos_++;  // '>'
    for (;;) {
      size_t lt = s_.find('<', pos_);
      if (lt == s_.npos) return Error("unterminated element <" + node->name + ">");
      STRATA_RETURN_IF_ERROR(DecodeText(s_.substr(pos_, lt - pos_), &node->text));
      pos_ = lt;
      if (StartsWith("</")) {
        pos_ += 2;
        std::string close = Name();
        SkipSpace();
        if (close != node->name || !StartsWith(">"))
          return Error("mismatched end tag </" + close + "> for <" + node->name + ">");
        pos_++;
        return Status::OK();
      }
      if (StartsWith("<![CDATA[")) {
        size_t end = s_.find("]]>", pos_);
        if (end == s_.npos) return Error("unterminated CDATA");
        node->text.append(s_.substr(pos_ + 9, end - pos_ - 9));
        pos_ = end + 3;
        continue;
      }
      if (StartsWith("<!--") || StartsWith("<?")) {
        SkipMisc();
        continue;
      }
      node->children.emplace_back();
      STRATA_RETURN_IF_ERROR(Element(&node->children.back(), depth + 1));
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

const XmlNode* XmlNode::Child(std::string_view child_name) const {
  for (const XmlNode& c : children)
    if (c.name == child_name) return &c;
  return nullptr;
}

std::string XmlNode::ChildText(std::string_view child_name) const {
  const XmlNode* c = Child(child_name);
  return c ? c->text : std::string();
}

Result<XmlNode> ParseXml(std::string_view doc) { return Parser(doc).Document(); }

}  // namespace strata::ufs::s3
