// az:// store: one Azure Blob Storage container, optionally below a name
// prefix, over the shared REST transport (ufs/rest.h) with Shared Key or SAS.
//
// Names and directories as blobfuse2 and ADLS see them: a directory is a
// zero-length blob "dir" with metadata hdi_isfolder=true (made by Mkdir), a
// zero-length "dir/" blob, or any blob below "dir/"; a symbolic link is a
// blob holding its target with is_symlink=true. Mode, uid, gid and mtime
// are x-ms-meta-mode / -uid / -gid / -mtime, the S3 driver's keys, so a
// tree copied between the stores keeps its attributes. User metadata names
// must be C# identifiers (Azure's rule); the content type is the blob's.
//
// Reads are ranged Get Blob calls pinned with If-Match to the ETag the file
// was opened with (a changed blob is Stale). Writes are one Put Blob up to
// the block size, else blocks uploaded in parallel and committed with Put
// Block List (block ids of one length; the block size grows so a blob needs
// at most 50,000); unchanged ranges of an edited blob are copied inside the
// store with Put Block From URL. Rename is Copy Blob then Delete Blob.
#pragma once

#include <memory>
#include <string>

#include "ufs/ufs.h"

namespace strata::ufs {

// Credentials come from the environment (see CredentialsFromEnv in
// ufs/azure/shared_key.h); errors name what to set.
Result<std::unique_ptr<Ufs>> NewAzureUfs(const std::string& uri, const std::string& container,
                                         const std::string& prefix, const AzureOptions& opts);

}  // namespace strata::ufs
