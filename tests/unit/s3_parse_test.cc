// ListObjectsV2 and S3 error parsing, S3 time formats.
#include <catch2/catch.hpp>

#include "ufs/s3/list.h"
#include "ufs/s3/xml.h"

using namespace strata::ufs::s3;

TEST_CASE("a ListObjectsV2 page with contents, prefixes and a continuation token", "[unit]") {
  const char* xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bkt</Name><Prefix>data/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents><Key>data/</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>data/a &amp; b.txt</Key><LastModified>2009-10-12T17:50:30.123Z</LastModified>
    <ETag>"fba9dede5f27731c9771645a39863328"</ETag><Size>434234</Size></Contents>
  <CommonPrefixes><Prefix>data/sub/</Prefix></CommonPrefixes>
</ListBucketResult>)";
  auto page = ParseListPage(xml);
  REQUIRE(page.ok());
  CHECK(page->truncated);
  CHECK(page->next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  REQUIRE(page->objects.size() == 2);
  CHECK(page->objects[0].key == "data/");
  CHECK(page->objects[0].etag == "\"d41d8cd98f00b204e9800998ecf8427e\"");
  CHECK(page->objects[1].key == "data/a & b.txt");
  CHECK(page->objects[1].size == 434234);
  CHECK(page->objects[1].mtime_ms == 1255369830123);
  REQUIRE(page->common_prefixes.size() == 1);
  CHECK(page->common_prefixes[0] == "data/sub/");
}

TEST_CASE("keys are URL-decoded only when the response says EncodingType url", "[unit]") {
  const char* encoded = R"(<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
    <Contents><Key>dir+a/caf%C3%A9%2B1%25.txt</Key><Size>1</Size></Contents>
    <CommonPrefixes><Prefix>sp+ace/</Prefix></CommonPrefixes></ListBucketResult>)";
  auto page = ParseListPage(encoded);
  REQUIRE(page.ok());
  CHECK(page->objects[0].key == "dir a/caf\xC3\xA9+1%.txt");
  CHECK(page->common_prefixes[0] == "sp ace/");
  // s3rver ignores encoding-type and sends raw keys: they must stay as they are.
  const char* raw = R"(<ListBucketResult><IsTruncated>false</IsTruncated>
    <Contents><Key>dir+a/100%25.txt</Key><Size>1</Size></Contents></ListBucketResult>)";
  page = ParseListPage(raw);
  REQUIRE(page.ok());
  CHECK(page->objects[0].key == "dir+a/100%25.txt");
}

TEST_CASE("malformed listings are errors, not silent empty pages", "[unit]") {
  CHECK_FALSE(ParseListPage("").ok());
  CHECK_FALSE(ParseListPage("<ListBucketResult><Contents><Key>a</Key>").ok());
  CHECK_FALSE(ParseListPage("<Error><Code>NoSuchBucket</Code></Error>").ok());
  CHECK_FALSE(ParseListPage("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>").ok());
  CHECK_FALSE(ParseListPage("<ListBucketResult><Key>&bogus;</Key></ListBucketResult>").ok());
  std::string deep;
  for (int i = 0; i < 200; i++) deep += "<a>";
  CHECK_FALSE(ParseXml(deep).ok());
}

TEST_CASE("xml reader handles CDATA, character references and comments", "[unit]") {
  auto doc = ParseXml("<?xml version='1.0'?><!-- c --><Error a='x>y'><Code>SlowDown</Code>"
                      "<Message><![CDATA[Please <reduce>]]> &#65;&#x42;</Message><Empty/></Error>");
  REQUIRE(doc.ok());
  CHECK(doc->name == "Error");
  CHECK(doc->ChildText("Code") == "SlowDown");
  CHECK(doc->ChildText("Message") == "Please <reduce> AB");
  CHECK(doc->Child("Empty") != nullptr);
  CHECK(doc->Child("Missing") == nullptr);
}

TEST_CASE("S3 time formats", "[unit]") {
  CHECK(ParseIso8601Ms("2009-10-12T17:50:30.000Z") == 1255369830000);
  CHECK(ParseIso8601Ms("2009-10-12T17:50:30Z") == 1255369830000);
  CHECK(ParseHttpDateMs("Mon, 12 Oct 2009 17:50:30 GMT") == 1255369830000);
  CHECK(ParseIso8601Ms("yesterday") == -1);
  CHECK(ParseHttpDateMs("12/10/2009") == -1);
}
