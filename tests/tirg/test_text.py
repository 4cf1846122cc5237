import torch

from tirg.text import UNK, TextEncoder, Vocabulary, pad_batch, tokenize


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("Make top-left RED object, blue!") == ["make", "top", "left", "red", "object", "blue"]


def test_unknown_words_map_to_zero_and_the_vocabulary_round_trips():
    vocabulary = Vocabulary.build(["add red cube to top-left", "remove center gray object"])
    assert vocabulary.words[0] == UNK and vocabulary.encode("add purple cube") == [
        vocabulary.index["add"], 0, vocabulary.index["cube"]]
    again = Vocabulary.from_list(vocabulary.to_list())
    assert again.words == vocabulary.words and again.encode("remove red") == vocabulary.encode("remove red")


def test_the_encoder_reads_the_last_real_token_so_padding_changes_nothing():
    torch.manual_seed(0)
    encoder = TextEncoder(vocab_size=10, word_dim=8, lstm_dim=8, out_dim=6).eval()
    short = [3, 4]
    ids, lengths = pad_batch([short, [1, 2, 3, 4, 5]])
    alone_ids, alone_lengths = pad_batch([short])
    with torch.no_grad():
        padded, alone = encoder(ids, lengths), encoder(alone_ids, alone_lengths)
    assert padded.shape == (2, 6)
    torch.testing.assert_close(padded[0], alone[0])
