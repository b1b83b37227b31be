/**
 * Model-independent answer checks. Answers of a small model are free text, so a check asks
 * whether the answer *mentions* the wanted term rather than comparing whole strings.
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

/** A general answer counts when it mentions any of the acceptable answers. */
export function scoreGeneral(answer: string, expected: readonly string[]): boolean {
  return expected.some((term) => mentions(answer, term));
}
