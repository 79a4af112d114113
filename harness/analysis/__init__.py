"""Stage 4, analysis: reads what runs wrote (:mod:`.sweep`), the weight geometry (:mod:`.geometry`), the
unlearnability tables (:mod:`.unlearn`) and released checkpoint pairs (:mod:`.pairs`). Never imports training code."""
