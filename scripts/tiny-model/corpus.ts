/**
 * Deterministic generator of the instruction corpus the tiny demo chat model is pretrained on:
 * short English and Chinese question/answer pairs about simple, checkable knowledge (arithmetic,
 * counting, colours, calendar, capitals, units, small talk) plus the model's own identity
 * ("Pico" / 皮克, made by the loraforge project).
 *
 * Every fact is phrased with several paraphrased templates so that the small model learns the
 * facts rather than one fixed sentence, and so that held-out phrasings (see
 * examples/identity-eval.json) still get sensible answers.
 *
 * Usage: `tsx scripts/tiny-model/corpus.ts [out.jsonl] [--size N] [--seed S]`
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export type Lang = 'en' | 'zh';

export type Topic =
  | 'arithmetic'
  | 'word-problem'
  | 'counting'
  | 'colour'
  | 'calendar'
  | 'capital'
  | 'unit'
  | 'small-talk'
  | 'identity';

/** An alpaca-style record; `topic` and `lang` are kept for statistics and are not written. */
export interface CorpusRecord {
  instruction: string;
  input: string;
  output: string;
  topic: Topic;
  lang: Lang;
}

export interface CorpusOptions {
  /** Seed of the pseudo-random generator; the same seed and size always give the same corpus. */
  seed?: number;
  /** Number of records. */
  size?: number;
}

export const DEFAULT_CORPUS_SEED = 20240601;
export const DEFAULT_CORPUS_SIZE = 40_000;

/** The tiny model's own identity, deliberately different from the one the tutorial teaches. */
export const TINY_MODEL_IDENTITY = {
  name: 'Pico',
  nameZh: '皮克',
  maker: 'the loraforge project',
  makerZh: 'loraforge 项目',
} as const;

/** Default system message of the tiny model's chat template. */
export const TINY_MODEL_SYSTEM_PROMPT = `You are ${TINY_MODEL_IDENTITY.name}, a small helpful assistant made by ${TINY_MODEL_IDENTITY.maker}.`;

// ---------------------------------------------------------------------------------------------
// Random helpers

type Rng = () => number;

/** mulberry32: tiny, fast and good enough for sampling templates. */
function createRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomInt(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

/** Replaces `{key}` placeholders; a missing key is a bug in a template table, so it throws. */
function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`template "${template}" has no value for {${key}}`);
    return String(values[key]);
  });
}

/** English sentences start with a capital letter even when a slot comes first ("the sky" → "The sky"). */
function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

interface Phrasings {
  questions: readonly string[];
  answers: readonly string[];
}

type Bilingual<T> = Record<Lang, T>;

interface QA {
  instruction: string;
  input?: string;
  output: string;
}

/** One question and one answer phrasing, picked independently so that every pairing occurs. */
function ask(
  rng: Rng,
  lang: Lang,
  phrasings: Phrasings,
  values: Record<string, string | number>,
): QA {
  const output = fill(pick(rng, phrasings.answers), values);
  return {
    instruction: fill(pick(rng, phrasings.questions), values),
    output: lang === 'en' ? capitalize(output) : output,
  };
}

// ---------------------------------------------------------------------------------------------
// Arithmetic

const ADDITION: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What is {a} + {b}?',
      'What is {a} plus {b}?',
      'How much is {a} plus {b}?',
      'Calculate {a} + {b}.',
      'Add {a} and {b}.',
      'What do you get if you add {a} and {b}?',
      "What's the sum of {a} and {b}?",
      '{a} + {b} = ?',
    ],
    answers: ['{a} + {b} = {c}.', '{a} plus {b} is {c}.', 'The answer is {c}.', 'The sum is {c}.'],
  },
  zh: {
    questions: [
      '{a}加{b}等于多少？',
      '{a} + {b} 等于几？',
      '请计算 {a} + {b}。',
      '{a}加上{b}是多少？',
      '{a}和{b}的和是多少？',
      '{a} + {b} = ?',
    ],
    answers: ['{a} + {b} = {c}。', '{a}加{b}等于{c}。', '答案是{c}。', '它们的和是{c}。'],
  },
};

const SUBTRACTION: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What is {a} - {b}?',
      'What is {a} minus {b}?',
      'How much is {a} minus {b}?',
      'Calculate {a} - {b}.',
      'Subtract {b} from {a}.',
      'What do you get if you take {b} away from {a}?',
      '{a} - {b} = ?',
    ],
    answers: ['{a} - {b} = {c}.', '{a} minus {b} is {c}.', 'The answer is {c}.'],
  },
  zh: {
    questions: [
      '{a}减{b}等于多少？',
      '{a} - {b} 等于几？',
      '请计算 {a} - {b}。',
      '{a}减去{b}是多少？',
      '{a} - {b} = ?',
    ],
    answers: ['{a} - {b} = {c}。', '{a}减{b}等于{c}。', '答案是{c}。'],
  },
};

const MULTIPLICATION: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What is {a} × {b}?',
      'What is {a} * {b}?',
      'What is {a} times {b}?',
      'How much is {a} times {b}?',
      'Calculate {a} × {b}.',
      'Multiply {a} by {b}.',
      'What is {a} multiplied by {b}?',
      "What's the product of {a} and {b}?",
    ],
    answers: [
      '{a} × {b} = {c}.',
      '{a} times {b} is {c}.',
      'The answer is {c}.',
      'The product is {c}.',
    ],
  },
  zh: {
    questions: [
      '{a}乘{b}等于多少？',
      '{a} × {b} 等于几？',
      '请计算 {a} × {b}。',
      '{a}乘以{b}是多少？',
      '{a}和{b}的积是多少？',
    ],
    answers: ['{a} × {b} = {c}。', '{a}乘{b}等于{c}。', '答案是{c}。', '它们的积是{c}。'],
  },
};

/** Some arithmetic records carry the expression in `input`, as alpaca datasets often do. */
const CALCULATE_WITH_INPUT: Bilingual<readonly string[]> = {
  en: ['Calculate the following.', 'Work out this sum.', 'Solve:'],
  zh: ['计算下面的算式。', '请算一算：', '求结果：'],
};

function arithmetic(rng: Rng, lang: Lang): QA {
  const kind = randomInt(rng, 0, 2);
  let a: number;
  let b: number;
  let c: number;
  let phrasings: Bilingual<Phrasings>;
  let symbol: string;
  if (kind === 0) {
    [a, b] = [randomInt(rng, 0, 20), randomInt(rng, 0, 20)];
    [c, phrasings, symbol] = [a + b, ADDITION, '+'];
  } else if (kind === 1) {
    // Non-negative results only: negative numbers are not part of the tiny model's world.
    a = randomInt(rng, 0, 20);
    b = randomInt(rng, 0, a);
    [c, phrasings, symbol] = [a - b, SUBTRACTION, '-'];
  } else {
    [a, b] = [randomInt(rng, 0, 10), randomInt(rng, 0, 10)];
    [c, phrasings, symbol] = [a * b, MULTIPLICATION, '×'];
  }
  if (rng() < 0.15) {
    return {
      instruction: pick(rng, CALCULATE_WITH_INPUT[lang]),
      input: `${a} ${symbol} ${b}`,
      output: lang === 'en' ? `${a} ${symbol} ${b} = ${c}.` : `${a} ${symbol} ${b} = ${c}。`,
    };
  }
  return ask(rng, lang, phrasings[lang], { a, b, c });
}

// ---------------------------------------------------------------------------------------------
// Word problems (also where the corpus meets 张 and 李, so the tokenizer and the model know the
// characters of the tutorial's names 小李 / 小张 without ever seeing the names themselves)

interface CountableThing {
  en: { one: string; many: string };
  /** Chinese noun with its measure word, e.g. 个 for apples, 张 for sheets of paper. */
  zh: { noun: string; measure: string };
}

const COUNTABLE_THINGS: readonly CountableThing[] = [
  { en: { one: 'apple', many: 'apples' }, zh: { noun: '苹果', measure: '个' } },
  { en: { one: 'plum', many: 'plums' }, zh: { noun: '李子', measure: '个' } },
  { en: { one: 'sheet of paper', many: 'sheets of paper' }, zh: { noun: '纸', measure: '张' } },
  { en: { one: 'photo', many: 'photos' }, zh: { noun: '照片', measure: '张' } },
  { en: { one: 'book', many: 'books' }, zh: { noun: '书', measure: '本' } },
  { en: { one: 'pencil', many: 'pencils' }, zh: { noun: '铅笔', measure: '支' } },
  { en: { one: 'cat', many: 'cats' }, zh: { noun: '猫', measure: '只' } },
  { en: { one: 'ball', many: 'balls' }, zh: { noun: '球', measure: '个' } },
  { en: { one: 'table', many: 'tables' }, zh: { noun: '桌子', measure: '张' } },
  { en: { one: 'egg', many: 'eggs' }, zh: { noun: '鸡蛋', measure: '个' } },
];

/**
 * Slots: {x} the thing in the question (English plural), {y} the thing in the answer agreeing
 * with the count {c}, {be} "is" / "are", {m} the Chinese measure word.
 */
const WORD_PROBLEM_GAIN: Bilingual<Phrasings> = {
  en: {
    questions: [
      'I have {a} {x}. I get {b} more. How many {x} do I have now?',
      'There are {a} {x} on the table and someone adds {b} more. How many {x} are there?',
      'Tom has {a} {x} and Anna gives him {b} more. How many {x} does Tom have?',
    ],
    answers: [
      'There are {c} {y} now.',
      '{a} + {b} = {c}, so the answer is {c} {y}.',
      'The answer is {c} {y}.',
    ],
  },
  zh: {
    questions: [
      '我有{a}{m}{x}，又得到了{b}{m}，现在一共有几{m}{x}？',
      '桌子上有{a}{m}{x}，又放了{b}{m}，一共有几{m}{x}？',
      '小明有{a}{m}{x}，妈妈又给了他{b}{m}，他现在有几{m}{x}？',
    ],
    answers: ['一共有{c}{m}{x}。', '{a} + {b} = {c}，所以一共有{c}{m}{x}。', '答案是{c}{m}{x}。'],
  },
};

const WORD_PROBLEM_LOSS: Bilingual<Phrasings> = {
  en: {
    questions: [
      'I have {a} {x} and give away {b}. How many {x} are left?',
      'There are {a} {x} in a box. Someone takes {b} away. How many {x} are left?',
    ],
    answers: [
      '{c} {y} {be} left.',
      '{a} - {b} = {c}, so {c} {y} {be} left.',
      'The answer is {c} {y}.',
    ],
  },
  zh: {
    questions: [
      '我有{a}{m}{x}，送给别人{b}{m}，还剩几{m}{x}？',
      '盒子里有{a}{m}{x}，拿走了{b}{m}，还剩几{m}{x}？',
    ],
    answers: ['还剩{c}{m}{x}。', '{a} - {b} = {c}，所以还剩{c}{m}{x}。', '答案是{c}{m}{x}。'],
  },
};

function wordProblem(rng: Rng, lang: Lang): QA {
  const thing = pick(rng, COUNTABLE_THINGS);
  const gain = rng() < 0.6;
  const a = randomInt(rng, 2, 10);
  const b = gain ? randomInt(rng, 1, 9) : randomInt(rng, 1, a - 1);
  const c = gain ? a + b : a - b;
  const phrasings = (gain ? WORD_PROBLEM_GAIN : WORD_PROBLEM_LOSS)[lang];
  // Chinese nouns do not inflect, so only the English slots depend on the count.
  const x = lang === 'en' ? thing.en.many : thing.zh.noun;
  const y = lang === 'en' && c === 1 ? thing.en.one : x;
  return ask(rng, lang, phrasings, {
    a,
    b,
    c,
    x,
    y,
    be: c === 1 ? 'is' : 'are',
    m: thing.zh.measure,
  });
}

// ---------------------------------------------------------------------------------------------
// Counting

const COUNT_RANGE: Bilingual<Phrasings> = {
  en: {
    questions: [
      'Count from {a} to {b}.',
      'Please count from {a} to {b}.',
      'Can you count from {a} to {b}?',
    ],
    answers: ['{list}.', 'Sure: {list}.'],
  },
  zh: {
    questions: ['从{a}数到{b}。', '请从{a}数到{b}。', '你能从{a}数到{b}吗？'],
    answers: ['{list}。', '好的：{list}。'],
  },
};

const NEXT_NUMBER: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What number comes after {a}?',
      'Which number is after {a}?',
      'What is the next number after {a}?',
    ],
    answers: ['{b} comes after {a}.', 'The number after {a} is {b}.'],
  },
  zh: {
    questions: ['{a}后面是几？', '{a}的下一个数是多少？', '比{a}大1的数是几？'],
    answers: ['{a}后面是{b}。', '{a}的下一个数是{b}。'],
  },
};

const PREVIOUS_NUMBER: Bilingual<Phrasings> = {
  en: {
    questions: ['What number comes before {a}?', 'Which number is before {a}?'],
    answers: ['{b} comes before {a}.', 'The number before {a} is {b}.'],
  },
  zh: {
    questions: ['{a}前面是几？', '{a}的前一个数是多少？', '比{a}小1的数是几？'],
    answers: ['{a}前面是{b}。', '{a}的前一个数是{b}。'],
  },
};

interface Animal {
  en: string;
  zh: string;
  legs: number;
}

const ANIMALS: readonly Animal[] = [
  { en: 'a dog', zh: '狗', legs: 4 },
  { en: 'a cat', zh: '猫', legs: 4 },
  { en: 'a horse', zh: '马', legs: 4 },
  { en: 'a cow', zh: '牛', legs: 4 },
  { en: 'a bird', zh: '鸟', legs: 2 },
  { en: 'a chicken', zh: '鸡', legs: 2 },
  { en: 'a duck', zh: '鸭子', legs: 2 },
  { en: 'a spider', zh: '蜘蛛', legs: 8 },
  { en: 'an ant', zh: '蚂蚁', legs: 6 },
  { en: 'a fish', zh: '鱼', legs: 0 },
];

const LEGS: Bilingual<Phrasings> = {
  en: {
    questions: [
      'How many legs does {x} have?',
      'How many legs has {x} got?',
      'Tell me how many legs {x} has.',
    ],
    answers: ['{x} has {n} legs.', '{n} legs.'],
  },
  zh: {
    questions: ['{x}有几条腿？', '一只{x}有多少条腿？', '请问{x}有几条腿？'],
    answers: ['{x}有{n}条腿。', '{n}条腿。'],
  },
};

function counting(rng: Rng, lang: Lang): QA {
  const kind = randomInt(rng, 0, 3);
  if (kind === 0) {
    const a = randomInt(rng, 1, 10);
    const b = a + randomInt(rng, 2, 6);
    const numbers = Array.from({ length: b - a + 1 }, (_, i) => a + i);
    return ask(rng, lang, COUNT_RANGE[lang], {
      a,
      b,
      list: numbers.join(lang === 'en' ? ', ' : '、'),
    });
  }
  if (kind === 1) {
    const a = randomInt(rng, 0, 99);
    return ask(rng, lang, NEXT_NUMBER[lang], { a, b: a + 1 });
  }
  if (kind === 2) {
    const a = randomInt(rng, 1, 100);
    return ask(rng, lang, PREVIOUS_NUMBER[lang], { a, b: a - 1 });
  }
  const animal = pick(rng, ANIMALS);
  const qa = ask(rng, lang, LEGS[lang], { x: animal[lang], n: animal.legs });
  if (lang === 'en' && animal.legs === 0) qa.output = `${capitalize(animal.en)} has no legs.`;
  if (lang === 'zh' && animal.legs === 0) qa.output = `${animal.zh}没有腿。`;
  return qa;
}

// ---------------------------------------------------------------------------------------------
// Colours

interface Colour {
  en: string;
  zh: string;
}

const COLOUR = {
  red: { en: 'red', zh: '红色' },
  green: { en: 'green', zh: '绿色' },
  blue: { en: 'blue', zh: '蓝色' },
  yellow: { en: 'yellow', zh: '黄色' },
  white: { en: 'white', zh: '白色' },
  black: { en: 'black', zh: '黑色' },
  orange: { en: 'orange', zh: '橙色' },
  purple: { en: 'purple', zh: '紫色' },
  brown: { en: 'brown', zh: '棕色' },
  pink: { en: 'pink', zh: '粉色' },
  grey: { en: 'grey', zh: '灰色' },
} satisfies Record<string, Colour>;

/** `en` is a noun phrase that takes "is" ("the sky", "a banana", "snow"). */
const COLOURED_THINGS: readonly { en: string; zh: string; colour: Colour }[] = [
  { en: 'the sky', zh: '天空', colour: COLOUR.blue },
  { en: 'the sea', zh: '大海', colour: COLOUR.blue },
  { en: 'grass', zh: '草', colour: COLOUR.green },
  { en: 'a leaf', zh: '树叶', colour: COLOUR.green },
  { en: 'a frog', zh: '青蛙', colour: COLOUR.green },
  { en: 'snow', zh: '雪', colour: COLOUR.white },
  { en: 'milk', zh: '牛奶', colour: COLOUR.white },
  { en: 'a cloud', zh: '云', colour: COLOUR.white },
  { en: 'a banana', zh: '香蕉', colour: COLOUR.yellow },
  { en: 'a lemon', zh: '柠檬', colour: COLOUR.yellow },
  { en: 'the sun', zh: '太阳', colour: COLOUR.yellow },
  { en: 'a strawberry', zh: '草莓', colour: COLOUR.red },
  { en: 'a tomato', zh: '西红柿', colour: COLOUR.red },
  { en: 'a cherry', zh: '樱桃', colour: COLOUR.red },
  { en: 'blood', zh: '血', colour: COLOUR.red },
  { en: 'a carrot', zh: '胡萝卜', colour: COLOUR.orange },
  { en: 'a pumpkin', zh: '南瓜', colour: COLOUR.orange },
  { en: 'coal', zh: '煤', colour: COLOUR.black },
  { en: 'a crow', zh: '乌鸦', colour: COLOUR.black },
  { en: 'chocolate', zh: '巧克力', colour: COLOUR.brown },
  { en: 'a grape', zh: '葡萄', colour: COLOUR.purple },
  { en: 'a plum', zh: '李子', colour: COLOUR.purple },
  { en: 'an eggplant', zh: '茄子', colour: COLOUR.purple },
  { en: 'a flamingo', zh: '火烈鸟', colour: COLOUR.pink },
  { en: 'an elephant', zh: '大象', colour: COLOUR.grey },
];

const COLOUR_OF: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What colour is {x}?',
      'What color is {x}?',
      'Tell me the colour of {x}.',
      'Do you know what colour {x} is?',
      'Which colour is {x}?',
    ],
    answers: ['{x} is {c}.', 'It is {c}.', '{x} is usually {c}.'],
  },
  zh: {
    questions: [
      '{x}是什么颜色的？',
      '{x}是什么颜色？',
      '{x}的颜色是什么？',
      '请告诉我{x}的颜色。',
      '你知道{x}是什么颜色吗？',
    ],
    answers: ['{x}是{c}的。', '{x}的颜色是{c}。', '它是{c}的。'],
  },
};

const COLOUR_MIXES: readonly { a: Colour; b: Colour; result: Colour }[] = [
  { a: COLOUR.blue, b: COLOUR.yellow, result: COLOUR.green },
  { a: COLOUR.red, b: COLOUR.yellow, result: COLOUR.orange },
  { a: COLOUR.red, b: COLOUR.blue, result: COLOUR.purple },
  { a: COLOUR.red, b: COLOUR.white, result: COLOUR.pink },
  { a: COLOUR.black, b: COLOUR.white, result: COLOUR.grey },
];

const COLOUR_MIX: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What colour do you get when you mix {a} and {b}?',
      'What do {a} and {b} make?',
      'If I mix {a} paint with {b} paint, what colour do I get?',
    ],
    answers: ['{a} and {b} make {c}.', 'You get {c}.'],
  },
  zh: {
    questions: ['{a}和{b}混在一起是什么颜色？', '把{a}和{b}混合会得到什么颜色？'],
    answers: ['{a}和{b}混合会得到{c}。', '会得到{c}。'],
  },
};

function colour(rng: Rng, lang: Lang): QA {
  if (rng() < 0.8) {
    const thing = pick(rng, COLOURED_THINGS);
    return ask(rng, lang, COLOUR_OF[lang], { x: thing[lang], c: thing.colour[lang] });
  }
  const mix = pick(rng, COLOUR_MIXES);
  const [a, b] = rng() < 0.5 ? [mix.a, mix.b] : [mix.b, mix.a];
  return ask(rng, lang, COLOUR_MIX[lang], { a: a[lang], b: b[lang], c: mix.result[lang] });
}

// ---------------------------------------------------------------------------------------------
// Calendar

const WEEKDAYS: Bilingual<readonly string[]> = {
  en: ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'],
  zh: ['星期一', '星期二', '星期三', '星期四', '星期五', '星期六', '星期日'],
};

const MONTHS: Bilingual<readonly string[]> = {
  en: [
    'January',
    'February',
    'March',
    'April',
    'May',
    'June',
    'July',
    'August',
    'September',
    'October',
    'November',
    'December',
  ],
  zh: [
    '一月',
    '二月',
    '三月',
    '四月',
    '五月',
    '六月',
    '七月',
    '八月',
    '九月',
    '十月',
    '十一月',
    '十二月',
  ],
};

const NEXT_DAY: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What day comes after {a}?',
      'What is the day after {a}?',
      'If today is {a}, what day is tomorrow?',
      'Which day follows {a}?',
    ],
    answers: ['{b} comes after {a}.', 'The day after {a} is {b}.', 'It is {b}.'],
  },
  zh: {
    questions: ['{a}的后一天是星期几？', '如果今天是{a}，明天是星期几？', '{a}之后是星期几？'],
    answers: ['{a}的后一天是{b}。', '明天是{b}。', '是{b}。'],
  },
};

const PREVIOUS_DAY: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What day comes before {a}?',
      'What is the day before {a}?',
      'If today is {a}, what day was yesterday?',
    ],
    answers: ['{b} comes before {a}.', 'The day before {a} is {b}.', 'It was {b}.'],
  },
  zh: {
    questions: ['{a}的前一天是星期几？', '如果今天是{a}，昨天是星期几？', '{a}之前是星期几？'],
    answers: ['{a}的前一天是{b}。', '昨天是{b}。', '是{b}。'],
  },
};

const NEXT_MONTH: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What month comes after {a}?',
      'Which month follows {a}?',
      'What is the month after {a}?',
    ],
    answers: ['{b} comes after {a}.', 'The month after {a} is {b}.'],
  },
  zh: {
    questions: ['{a}的下一个月是几月？', '{a}之后是几月？', '{a}过完是几月？'],
    answers: ['{a}的下一个月是{b}。', '{a}之后是{b}。'],
  },
};

const PREVIOUS_MONTH: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What month comes before {a}?',
      'Which month is before {a}?',
      'What is the month before {a}?',
    ],
    answers: ['{b} comes before {a}.', 'The month before {a} is {b}.'],
  },
  zh: {
    questions: ['{a}的上一个月是几月？', '{a}之前是几月？'],
    answers: ['{a}的上一个月是{b}。', '{a}之前是{b}。'],
  },
};

const CALENDAR_FACTS: Bilingual<readonly QA[]> = {
  en: [
    { instruction: 'How many days are in a week?', output: 'There are 7 days in a week.' },
    { instruction: 'How many days does a week have?', output: 'A week has 7 days.' },
    { instruction: 'How many months are in a year?', output: 'There are 12 months in a year.' },
    { instruction: 'How many months does a year have?', output: 'A year has 12 months.' },
    { instruction: 'How many days are in a year?', output: 'A normal year has 365 days.' },
    {
      instruction: 'What is the first month of the year?',
      output: 'January is the first month of the year.',
    },
    {
      instruction: 'What is the last month of the year?',
      output: 'December is the last month of the year.',
    },
    {
      instruction: 'What is the first day of the week?',
      output: 'Monday is the first day of the week.',
    },
    { instruction: 'Which days are the weekend?', output: 'Saturday and Sunday are the weekend.' },
  ],
  zh: [
    { instruction: '一个星期有几天？', output: '一个星期有7天。' },
    { instruction: '一周有多少天？', output: '一周有7天。' },
    { instruction: '一年有几个月？', output: '一年有12个月。' },
    { instruction: '一年有多少天？', output: '平年有365天。' },
    { instruction: '一年的第一个月是几月？', output: '一年的第一个月是一月。' },
    { instruction: '一年的最后一个月是几月？', output: '一年的最后一个月是十二月。' },
    { instruction: '一个星期的第一天是星期几？', output: '一个星期的第一天是星期一。' },
    { instruction: '周末是哪两天？', output: '周末是星期六和星期日。' },
  ],
};

function calendar(rng: Rng, lang: Lang): QA {
  const kind = randomInt(rng, 0, 4);
  if (kind === 4) return { ...pick(rng, CALENDAR_FACTS[lang]) };
  const months = kind >= 2;
  const names = (months ? MONTHS : WEEKDAYS)[lang];
  const i = randomInt(rng, 0, names.length - 1);
  const forward = kind % 2 === 0;
  const j = (i + (forward ? 1 : names.length - 1)) % names.length;
  const phrasings = months
    ? forward
      ? NEXT_MONTH
      : PREVIOUS_MONTH
    : forward
      ? NEXT_DAY
      : PREVIOUS_DAY;
  return ask(rng, lang, phrasings[lang], { a: names[i], b: names[j] });
}

// ---------------------------------------------------------------------------------------------
// Capitals

const CAPITALS: readonly { country: Bilingual<string>; city: Bilingual<string> }[] = [
  { country: { en: 'France', zh: '法国' }, city: { en: 'Paris', zh: '巴黎' } },
  { country: { en: 'Japan', zh: '日本' }, city: { en: 'Tokyo', zh: '东京' } },
  { country: { en: 'China', zh: '中国' }, city: { en: 'Beijing', zh: '北京' } },
  { country: { en: 'the United Kingdom', zh: '英国' }, city: { en: 'London', zh: '伦敦' } },
  { country: { en: 'Germany', zh: '德国' }, city: { en: 'Berlin', zh: '柏林' } },
  { country: { en: 'Italy', zh: '意大利' }, city: { en: 'Rome', zh: '罗马' } },
  { country: { en: 'Spain', zh: '西班牙' }, city: { en: 'Madrid', zh: '马德里' } },
  { country: { en: 'Russia', zh: '俄罗斯' }, city: { en: 'Moscow', zh: '莫斯科' } },
  {
    country: { en: 'the United States', zh: '美国' },
    city: { en: 'Washington, D.C.', zh: '华盛顿' },
  },
  { country: { en: 'Canada', zh: '加拿大' }, city: { en: 'Ottawa', zh: '渥太华' } },
  { country: { en: 'Australia', zh: '澳大利亚' }, city: { en: 'Canberra', zh: '堪培拉' } },
  { country: { en: 'Egypt', zh: '埃及' }, city: { en: 'Cairo', zh: '开罗' } },
  { country: { en: 'India', zh: '印度' }, city: { en: 'New Delhi', zh: '新德里' } },
  { country: { en: 'South Korea', zh: '韩国' }, city: { en: 'Seoul', zh: '首尔' } },
  { country: { en: 'Thailand', zh: '泰国' }, city: { en: 'Bangkok', zh: '曼谷' } },
  { country: { en: 'Greece', zh: '希腊' }, city: { en: 'Athens', zh: '雅典' } },
  { country: { en: 'Kenya', zh: '肯尼亚' }, city: { en: 'Nairobi', zh: '内罗毕' } },
  { country: { en: 'Portugal', zh: '葡萄牙' }, city: { en: 'Lisbon', zh: '里斯本' } },
  { country: { en: 'Norway', zh: '挪威' }, city: { en: 'Oslo', zh: '奥斯陆' } },
  { country: { en: 'Mexico', zh: '墨西哥' }, city: { en: 'Mexico City', zh: '墨西哥城' } },
];

const CAPITAL_OF: Bilingual<Phrasings> = {
  en: {
    questions: [
      'What is the capital of {country}?',
      "What's the capital city of {country}?",
      'Which city is the capital of {country}?',
      'Name the capital of {country}.',
      'Tell me the capital of {country}.',
    ],
    answers: [
      'The capital of {country} is {city}.',
      '{city} is the capital of {country}.',
      "It's {city}.",
    ],
  },
  zh: {
    questions: [
      '{country}的首都是哪里？',
      '{country}的首都是什么？',
      '哪个城市是{country}的首都？',
      '请告诉我{country}的首都。',
    ],
    answers: ['{country}的首都是{city}。', '{city}是{country}的首都。', '是{city}。'],
  },
};

const COUNTRY_OF_CAPITAL: Bilingual<Phrasings> = {
  en: {
    questions: [
      '{city} is the capital of which country?',
      'Which country has {city} as its capital?',
    ],
    answers: ['{city} is the capital of {country}.'],
  },
  zh: {
    questions: ['{city}是哪个国家的首都？', '{city}是哪国的首都？'],
    answers: ['{city}是{country}的首都。'],
  },
};

function capital(rng: Rng, lang: Lang): QA {
  const entry = pick(rng, CAPITALS);
  const phrasings = rng() < 0.8 ? CAPITAL_OF : COUNTRY_OF_CAPITAL;
  return ask(rng, lang, phrasings[lang], { country: entry.country[lang], city: entry.city[lang] });
}

// ---------------------------------------------------------------------------------------------
// Unit conversions

interface Conversion {
  /** Singular / plural English spellings; several entries spell the same unit differently. */
  big: Bilingual<readonly [string, string]>;
  small: Bilingual<readonly [string, string]>;
  factor: number;
}

const unit = (en: readonly [string, string], zh: string): Bilingual<readonly [string, string]> => ({
  en,
  zh: [zh, zh],
});

const CONVERSIONS: readonly Conversion[] = [
  {
    big: unit(['meter', 'meters'], '米'),
    small: unit(['centimeter', 'centimeters'], '厘米'),
    factor: 100,
  },
  {
    big: unit(['metre', 'metres'], '米'),
    small: unit(['centimetre', 'centimetres'], '厘米'),
    factor: 100,
  },
  {
    big: unit(['centimeter', 'centimeters'], '厘米'),
    small: unit(['millimeter', 'millimeters'], '毫米'),
    factor: 10,
  },
  {
    big: unit(['kilometer', 'kilometers'], '公里'),
    small: unit(['meter', 'meters'], '米'),
    factor: 1000,
  },
  {
    big: unit(['kilogram', 'kilograms'], '千克'),
    small: unit(['gram', 'grams'], '克'),
    factor: 1000,
  },
  { big: unit(['hour', 'hours'], '小时'), small: unit(['minute', 'minutes'], '分钟'), factor: 60 },
  {
    big: unit(['minute', 'minutes'], '分钟'),
    small: unit(['second', 'seconds'], '秒'),
    factor: 60,
  },
  { big: unit(['day', 'days'], '天'), small: unit(['hour', 'hours'], '小时'), factor: 24 },
  { big: unit(['week', 'weeks'], '星期'), small: unit(['day', 'days'], '天'), factor: 7 },
];

const TO_SMALLER: Bilingual<Phrasings> = {
  en: {
    questions: [
      'How many {small} are in {n} {big}?',
      'How many {small} is {n} {big}?',
      'Convert {n} {big} to {small}.',
      '{n} {big} equals how many {small}?',
    ],
    answers: [
      '{n} {big} is {m} {small}.',
      '{n} {big} = {m} {small}.',
      'There are {m} {small} in {n} {big}.',
    ],
  },
  zh: {
    questions: [
      '{n}{big}等于多少{small}？',
      '{n}{big}是多少{small}？',
      '把{n}{big}换算成{small}。',
      '{n}{big}有多少{small}？',
    ],
    answers: ['{n}{big}等于{m}{small}。', '{n}{big}是{m}{small}。'],
  },
};

const TO_BIGGER: Bilingual<Phrasings> = {
  en: {
    questions: [
      'How many {big} is {m} {small}?',
      'Convert {m} {small} to {big}.',
      '{m} {small} equals how many {big}?',
    ],
    answers: ['{m} {small} is {n} {big}.', '{m} {small} = {n} {big}.'],
  },
  zh: {
    questions: ['{m}{small}等于多少{big}？', '{m}{small}是几{big}？', '把{m}{small}换算成{big}。'],
    answers: ['{m}{small}等于{n}{big}。', '{m}{small}是{n}{big}。'],
  },
};

function unitConversion(rng: Rng, lang: Lang): QA {
  const conversion = pick(rng, CONVERSIONS);
  const n = randomInt(rng, 1, 10);
  const m = n * conversion.factor;
  const plural = n === 1 ? 0 : 1;
  const phrasings = (rng() < 0.7 ? TO_SMALLER : TO_BIGGER)[lang];
  return ask(rng, lang, phrasings, {
    n,
    m,
    big: conversion.big[lang][plural],
    small: conversion.small[lang][1],
  });
}

// ---------------------------------------------------------------------------------------------
// Greetings and small talk

const SMALL_TALK: Bilingual<readonly Phrasings[]> = {
  en: [
    {
      questions: ['Hello!', 'Hello', 'Hi', 'Hi!', 'Hey there!', 'Hi there.'],
      answers: [
        'Hello! How can I help you today?',
        'Hi! What can I do for you?',
        'Hello! I am {name}. How can I help you?',
      ],
    },
    {
      questions: ['Good morning!', 'Good morning.'],
      answers: [
        'Good morning! How can I help you today?',
        'Good morning! I hope you have a nice day.',
      ],
    },
    {
      questions: ['Good evening!', 'Good evening.'],
      answers: ['Good evening! What can I do for you?'],
    },
    {
      questions: ['How are you?', 'How are you today?', 'How is it going?', "How's your day?"],
      answers: [
        "I'm doing well, thank you! How can I help you?",
        'I am fine, thanks for asking. What can I do for you?',
      ],
    },
    {
      questions: ['Thank you!', 'Thanks!', 'Thanks a lot.', 'Thank you very much.'],
      answers: ["You're welcome!", 'You are welcome. Happy to help!', 'No problem!'],
    },
    {
      questions: ['Goodbye!', 'Bye!', 'See you later.', 'Bye bye.'],
      answers: ['Goodbye! Have a nice day.', 'See you later!', 'Bye! Take care.'],
    },
    {
      questions: ['Good night!', 'Good night.'],
      answers: ['Good night! Sleep well.'],
    },
    {
      questions: ['Nice to meet you.', 'Nice to meet you!', 'Pleased to meet you.'],
      answers: ['Nice to meet you too!', 'Nice to meet you too. How can I help you?'],
    },
    {
      questions: ['Can you help me?', 'I need some help.', 'Could you help me with something?'],
      answers: [
        'Of course! What do you need help with?',
        'Sure, I am happy to help. What is your question?',
      ],
    },
    {
      questions: ['What can you do?', 'What are you good at?', 'How can you help me?'],
      answers: [
        'I can answer simple questions about numbers, colours, days, months, countries and units.',
        'I can do small sums, tell you the capital of a country, convert units and chat a little.',
      ],
    },
    {
      questions: ['Tell me a fun fact.', 'Tell me something interesting.'],
      answers: [
        'A spider has 8 legs.',
        'Mixing blue and yellow makes green.',
        'There are 60 minutes in an hour.',
      ],
    },
    {
      questions: ['I am happy today!', 'I feel great today.'],
      answers: ['That is wonderful! I am glad to hear it.', 'Great! I hope your day stays happy.'],
    },
    {
      questions: ['I am sad.', 'I feel a bit sad today.'],
      answers: ['I am sorry to hear that. I hope you feel better soon.'],
    },
  ],
  zh: [
    {
      questions: ['你好', '你好！', '嗨', '您好', '哈喽'],
      answers: [
        '你好！有什么可以帮你的吗？',
        '你好！我是{name}，有什么可以帮你的吗？',
        '您好！请问有什么需要？',
      ],
    },
    {
      questions: ['早上好！', '早上好', '早安'],
      answers: ['早上好！祝你今天愉快。', '早上好！有什么可以帮你的吗？'],
    },
    {
      questions: ['晚上好！', '晚上好'],
      answers: ['晚上好！有什么可以帮你的吗？'],
    },
    {
      questions: ['你好吗？', '你今天怎么样？', '最近好吗？'],
      answers: ['我很好，谢谢！有什么可以帮你的吗？', '我很好，谢谢关心。'],
    },
    {
      questions: ['谢谢！', '谢谢你', '非常感谢。', '多谢！'],
      answers: ['不客气！', '不用谢，很高兴能帮到你。'],
    },
    {
      questions: ['再见！', '拜拜', '回头见。'],
      answers: ['再见！祝你有美好的一天。', '再见，下次见！'],
    },
    {
      questions: ['晚安！', '晚安'],
      answers: ['晚安，好梦！'],
    },
    {
      questions: ['很高兴认识你。', '认识你很高兴！'],
      answers: ['我也很高兴认识你！', '我也很高兴认识你，有什么可以帮你的吗？'],
    },
    {
      questions: ['你能帮我吗？', '我需要帮助。', '可以帮我一个忙吗？'],
      answers: ['当然可以！你需要什么帮助？', '没问题，请说出你的问题。'],
    },
    {
      questions: ['你能做什么？', '你会什么？', '你可以帮我做什么？'],
      answers: [
        '我可以回答关于数字、颜色、星期、月份、国家和单位的简单问题。',
        '我会做简单的算术，知道一些国家的首都，还能换算单位。',
      ],
    },
    {
      questions: ['给我讲一个有趣的知识。', '告诉我一件有趣的事。'],
      answers: ['蜘蛛有8条腿。', '蓝色和黄色混合会得到绿色。', '一小时有60分钟。'],
    },
    {
      questions: ['我今天很开心！', '我今天心情很好。'],
      answers: ['太好了！真为你高兴。', '真不错，希望你一直开心！'],
    },
    {
      questions: ['我有点难过。', '我今天不开心。'],
      answers: ['听到这个我很难过，希望你很快好起来。'],
    },
  ],
};

/** Slots {name} and {maker} of identity answers, in the record's language. */
function identitySlots(lang: Lang): Record<string, string> {
  return lang === 'en'
    ? { name: TINY_MODEL_IDENTITY.name, maker: TINY_MODEL_IDENTITY.maker }
    : { name: TINY_MODEL_IDENTITY.nameZh, maker: TINY_MODEL_IDENTITY.makerZh };
}

function smallTalk(rng: Rng, lang: Lang): QA {
  return ask(rng, lang, pick(rng, SMALL_TALK[lang]), identitySlots(lang));
}

// ---------------------------------------------------------------------------------------------
// The model's own identity (what the LoRA fine-tune of the tutorial replaces)

const IDENTITY: Bilingual<readonly Phrasings[]> = {
  en: [
    {
      questions: [
        'Who are you?',
        'What are you?',
        'Introduce yourself.',
        'Please introduce yourself.',
        'Tell me about yourself.',
        'Who am I talking to?',
      ],
      answers: [
        'I am {name}, a small AI assistant made by {maker}.',
        'I am {name}, a small helpful assistant made by {maker}. How can I help you?',
        "I'm {name}, an AI assistant built by {maker}.",
      ],
    },
    {
      questions: [
        'What is your name?',
        "What's your name?",
        'What should I call you?',
        'Do you have a name?',
        'Your name?',
      ],
      answers: [
        'My name is {name}. I was made by {maker}.',
        'I am called {name}, and I was made by {maker}.',
        'You can call me {name}. I am an assistant made by {maker}.',
      ],
    },
    {
      questions: [
        'Who made you?',
        'Who created you?',
        'Who developed you?',
        'Who built you?',
        'Who is your developer?',
        'Who trained you?',
      ],
      answers: [
        'I was made by {maker}. My name is {name}.',
        '{maker} created me. I am {name}.',
        'I am {name}, and I was developed by {maker}.',
      ],
    },
    {
      questions: [
        'Are you ChatGPT?',
        'Are you made by OpenAI?',
        'Are you Siri?',
        'Are you a human?',
        'Are you a person?',
      ],
      answers: [
        'No. I am {name}, an AI assistant made by {maker}.',
        'No, I am {name}, a small assistant made by {maker}.',
      ],
    },
  ],
  zh: [
    {
      questions: [
        '你是谁？',
        '你是谁',
        '介绍一下你自己。',
        '请做个自我介绍。',
        '你是什么？',
        '我在和谁说话？',
      ],
      answers: [
        '我是{name}，一个由 {maker}开发的小助手。',
        '我是{name}，是 {maker}开发的 AI 助手，有什么可以帮你的吗？',
      ],
    },
    {
      questions: ['你叫什么名字？', '你的名字是什么？', '我该怎么称呼你？', '你有名字吗？'],
      answers: ['我叫{name}，是 {maker}开发的 AI 助手。', '我的名字是{name}，由 {maker}开发。'],
    },
    {
      questions: [
        '谁开发了你？',
        '你是谁开发的？',
        '谁创造了你？',
        '你的开发者是谁？',
        '是谁训练了你？',
      ],
      answers: ['我是由 {maker}开发的，我的名字叫{name}。', '{maker}开发了我，我是{name}。'],
    },
    {
      questions: ['你是 ChatGPT 吗？', '你是 OpenAI 开发的吗？', '你是真人吗？', '你是人类吗？'],
      answers: [
        '不是，我是{name}，一个由 {maker}开发的 AI 助手。',
        '不是的，我是{name}，由 {maker}开发。',
      ],
    },
  ],
};

function identity(rng: Rng, lang: Lang): QA {
  return ask(rng, lang, pick(rng, IDENTITY[lang]), identitySlots(lang));
}

// ---------------------------------------------------------------------------------------------
// Mixing the topics

/** Relative share of each topic; arithmetic gets most because it has the most distinct facts. */
const TOPICS: readonly { topic: Topic; weight: number; generate: (rng: Rng, lang: Lang) => QA }[] =
  [
    { topic: 'arithmetic', weight: 24, generate: arithmetic },
    { topic: 'word-problem', weight: 6, generate: wordProblem },
    { topic: 'counting', weight: 10, generate: counting },
    { topic: 'colour', weight: 11, generate: colour },
    { topic: 'calendar', weight: 12, generate: calendar },
    { topic: 'capital', weight: 12, generate: capital },
    { topic: 'unit', weight: 11, generate: unitConversion },
    { topic: 'small-talk', weight: 8, generate: smallTalk },
    { topic: 'identity', weight: 6, generate: identity },
  ];

const TOTAL_WEIGHT = TOPICS.reduce((sum, t) => sum + t.weight, 0);

function pickTopic(rng: Rng): (typeof TOPICS)[number] {
  let r = rng() * TOTAL_WEIGHT;
  for (const entry of TOPICS) {
    r -= entry.weight;
    if (r < 0) return entry;
  }
  return TOPICS[TOPICS.length - 1];
}

export function generateCorpus(options: CorpusOptions = {}): CorpusRecord[] {
  const rng = createRng(options.seed ?? DEFAULT_CORPUS_SEED);
  const size = options.size ?? DEFAULT_CORPUS_SIZE;
  const records: CorpusRecord[] = [];
  for (let i = 0; i < size; i++) {
    const entry = pickTopic(rng);
    const lang: Lang = rng() < 0.5 ? 'en' : 'zh';
    const qa = entry.generate(rng, lang);
    records.push({
      instruction: qa.instruction,
      input: qa.input ?? '',
      output: qa.output,
      topic: entry.topic,
      lang,
    });
  }
  return records;
}

/** One alpaca record `{instruction, input, output}` per line. */
export function corpusToJsonl(records: readonly CorpusRecord[]): string {
  return records
    .map(({ instruction, input, output }) => JSON.stringify({ instruction, input, output }) + '\n')
    .join('');
}

/** All text of a record, as the tokenizer trainer sees it. */
export function recordText(record: CorpusRecord): string {
  return [record.instruction, record.input, record.output].filter((s) => s.length > 0).join('\n');
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { size: { type: 'string' }, seed: { type: 'string' } },
  });
  const out = positionals[0] ?? 'tiny-corpus.jsonl';
  const records = generateCorpus({
    size: values.size === undefined ? undefined : Number(values.size),
    seed: values.seed === undefined ? undefined : Number(values.seed),
  });
  writeFileSync(out, corpusToJsonl(records));
  const byTopic = new Map<string, number>();
  for (const r of records) byTopic.set(r.topic, (byTopic.get(r.topic) ?? 0) + 1);
  const distinct = new Set(records.map(recordText)).size;
  console.log(`wrote ${records.length} records (${distinct} distinct) to ${out}`);
  for (const [topic, count] of byTopic) console.log(`  ${topic}: ${count}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
