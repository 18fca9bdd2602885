//! Immutable Vamana/DiskANN segments: quantized codes in RAM, full vectors and neighbour lists in
//! 4 KiB sectors on disk, searched by a beam search with an exact rerank.
