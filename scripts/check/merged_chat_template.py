"""Independent check: transformers renders a merged model's chat template (written by
`loraforge merge` for an adapter trained with the tutorial template) exactly as loraforge's
tutorial template renders the prompt. Usage: python merged_chat_template.py <merged folder>.
Not run by npm test (Python is for references only)."""
import json
import sys

from transformers.utils.chat_template_utils import render_jinja_template

# transformers' own Jinja environment (what apply_chat_template uses); the fast tokenizer itself
# is not needed to render text.
config = json.load(open(f"{sys.argv[1]}/tokenizer_config.json"))
cases = [
    ([{"role": "user", "content": "你是谁？"}], "Human: 你是谁？\n\nAssistant: "),
    (
        [
            {"role": "system", "content": " Be brief. "},
            {"role": "user", "content": "hi  "},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and you?"},
        ],
        "Be brief.\nHuman: hi\n\nAssistant: hello<|im_end|>\nHuman: and you?\n\nAssistant: ",
    ),
]
for messages, expected in cases:
    rendered, _ = render_jinja_template(
        conversations=[messages],
        chat_template=config["chat_template"],
        add_generation_prompt=True,
        eos_token=config["eos_token"],
    )
    text = rendered[0]
    assert text == expected, (text, expected)
    print("ok", repr(text))
