"""JiebaWordBegins (the batched segmentation corpus preparation uses) must give exactly jieba.cut's words."""

import numpy as np
import pytest

from bertology.tokenization.words import jieba_word_begins, load_jieba

jieba = pytest.importorskip("jieba")

TEXTS = [
    "",
    "abc def",
    "我爱北京天安门 hello world\r\n你好。",
    "ＡＢＣ１２３中文English混合x.y%z-1+2#3&4_5",
    "的的的的的",
    "中",
    "１９９８年，新华社北京１月１日电\n江泽民主席发表新年讲话《迈向充满希望的新世纪》",
    "李小福是创新办主任也是云计算方面的专家; 什么是八一双鹿\n例如我输入一个带“韩玉赏鉴”的标题",
]


def _reference(text: str) -> np.ndarray:
    begins = np.ones(len(text) + 1, dtype=bool)
    at = 0
    for m in jieba.re_han_default.finditer(text):
        at = m.start()
        begins[m.start():m.end()] = False
        for word in jieba.lcut(m.group(), HMM=True):
            begins[at] = True
            at += len(word)
    return begins


@pytest.mark.parametrize("text", [*TEXTS, "\n".join(TEXTS)])
def test_matches_jieba(text):
    segment = jieba_word_begins(load_jieba())
    assert segment(text).tolist() == _reference(text).tolist()
