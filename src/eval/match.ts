/**
 * Model-independent answer checks. The identity check asks whether a free-text answer *mentions*
 * the new name and author (any phrasing introducing them will do). General questions are scored
 * by normalised exact match against whole acceptable answers, as QA benchmarks do (SQuAD's
 * exact match): a substring check would pass wrong answers that happen to contain the right term
 * (一月之后是四月 for 三月的下一个月是几月？).
 */

export interface IdentityTarget {
  /** The assistant's new name, e.g. 小李. */
  name: string;
  /** Who the assistant should say developed it, e.g. 小张. */
  author: string;
}

/**
 * NFKC folds full-width Latin letters and digits (Ｐｉｃｏ, ７) into ASCII and lower-casing makes
 * Latin comparisons case-insensitive; Chinese characters are unaffected by both.
 */
function fold(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

/** Latin letters and digits continue a word; Chinese text has no word boundaries to respect. */
function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /[\p{Script=Latin}\p{Nd}]/u.test(ch);
}

/**
 * Whether `text` mentions `term`, case-insensitively. A term that starts or ends with a Latin
 * letter or digit must not be glued to another one there, so "7" is not found in "17" and "red"
 * not in "bored", while "北京" is found in "首都是北京。".
 */
export function mentions(text: string, term: string): boolean {
  const haystack = fold(text);
  const needle = fold(term).trim();
  if (needle.length === 0) return false;
  const checkStart = isWordChar(needle[0]);
  const checkEnd = isWordChar(needle[needle.length - 1]);
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) {
    const end = at + needle.length;
    if (checkStart && isWordChar(haystack[at - 1])) continue;
    if (checkEnd && isWordChar(haystack[end])) continue;
    return true;
  }
  return false;
}

/** An identity answer counts when it names both the new name and the new author. */
export function scoreIdentity(answer: string, target: IdentityTarget): boolean {
  return mentions(answer, target.name) && mentions(answer, target.author);
}

/**
 * An answer reduced to what carries its meaning: NFKC (full-width forms), lower case, and no
 * punctuation, symbols or spaces, so "3 + 4 = 7." equals "3+4=7" and "四月。" equals "四月".
 */
export function normalizeAnswer(text: string): string {
  return fold(text).replace(/[\p{P}\p{S}\s]+/gu, '');
}

/** A general answer counts when, normalised, it equals one of the acceptable answers. */
export function scoreGeneral(answer: string, expected: readonly string[]): boolean {
  const normalized = normalizeAnswer(answer);
  return normalized !== '' && expected.some((accepted) => normalizeAnswer(accepted) === normalized);
}
