"""Client images on their way in: data URLs, remote URLs under the operator's policy, the provenance gate."""
