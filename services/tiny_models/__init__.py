"""Random-weight models of the real architectures, and the tokenizer they use, built here from a config: what the
tests, the benchmarks and `flashvqa build-tiny-model` serve where no checkpoint can be downloaded. Never imported
by a serving process."""
