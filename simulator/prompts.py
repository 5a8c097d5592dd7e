"""Prompt text for simulated requests, built column-at-a-time with pyarrow (no per-row Python).

A *family* is a kind of request (chat, coding, chain-of-thought elicitation, ...) with a handful of
*forms*: templates whose `{pool}` slots draw from word/phrase pools and whose `{#lo-hi}` slots draw
integers. A record is built either

- *free* (a human typing): every slot drawn independently, so the space of texts is large and a
  normalized fingerprint (lowercase, digits -> #, collapsed whitespace) rarely repeats; or
- *templated* (a script): the form and every pool slot are fixed by a template key and a salt, and
  only the numbers vary, so fingerprints repeat. Campaign accounts share one salt across the whole
  campaign (template overlap between linked accounts); an eval harness has its own salt per account.

Families also say what the request looks like beyond its text (tools declared, image attached,
token sizes), because those travel with the kind of task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PROMPT_PREFIX_CHARS = 1024
MAX_FORMS = 64

POOLS: dict[str, list[str]] = {
    "name": [
        "Maria",
        "James",
        "Aisha",
        "Wei",
        "Lukas",
        "Priya",
        "Tom",
        "Sofia",
        "Kenji",
        "Olga",
        "Diego",
        "Fatima",
        "Noah",
        "Chloe",
        "Arjun",
        "Emma",
        "Mateo",
        "Hannah",
        "Yusuf",
        "Lena",
        "Carlos",
        "Mei",
        "Ivan",
        "Grace",
        "Omar",
        "Julia",
        "Sven",
        "Amara",
        "Leo",
        "Nadia",
        "Ben",
        "Rosa",
        "Tariq",
        "Ingrid",
        "Hugo",
        "Zara",
    ],
    "city": [
        "Lisbon",
        "Kyoto",
        "Denver",
        "Cape Town",
        "Montreal",
        "Edinburgh",
        "Seoul",
        "Buenos Aires",
        "Vienna",
        "Hanoi",
        "Austin",
        "Copenhagen",
        "Istanbul",
        "Melbourne",
        "Nairobi",
        "Prague",
        "Oaxaca",
        "Reykjavik",
        "Singapore",
        "Porto",
        "Krakow",
        "Vancouver",
        "Marrakech",
        "Bologna",
        "Tbilisi",
        "Bergen",
    ],
    "month": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week", "tomorrow morning"],
    "life_task": [
        "get my toddler to sleep through the night",
        "negotiate a raise",
        "keep basil alive indoors",
        "start running without hurting my knees",
        "organize a small wedding on a budget",
        "learn to cook for one person",
        "ask my neighbour to turn the music down",
        "stop procrastinating on my thesis",
        "prepare for a long-haul flight with a dog",
        "make friends after moving to a new city",
        "save for a house deposit",
        "fix a squeaky door hinge",
        "get rid of fruit flies in the kitchen",
        "pick a first road bike",
        "write a good cover letter",
        "plan meals for a family of five",
        "repot a fiddle leaf fig",
        "deal with a difficult coworker",
        "clean a cast iron pan",
    ],
    "msg_kind": [
        "short email",
        "polite message",
        "LinkedIn post",
        "thank-you note",
        "formal complaint",
        "wedding toast",
        "resignation letter",
        "birthday message",
        "text message",
        "cover letter",
    ],
    "recipient": [
        "my landlord",
        "my manager",
        "a client",
        "my kid's teacher",
        "the HOA board",
        "a recruiter",
        "my team",
        "an old friend",
        "customer support",
        "my professor",
        "the city council",
    ],
    "topic": [
        "a delayed refund",
        "the broken heating",
        "moving the deadline",
        "a schedule change",
        "my sick leave",
        "the new parking rules",
        "a missed payment",
        "the quarterly results",
        "a noise complaint",
        "the team offsite",
        "switching to a four-day week",
        "the lease renewal",
        "a product recall",
    ],
    "book_topic": [
        "the history of Rome",
        "stoicism",
        "personal finance",
        "urban design",
        "the cold war",
        "machine learning for beginners",
        "climate science",
        "behavioural economics",
        "jazz",
        "the ottoman empire",
        "mushroom foraging",
        "startups",
        "space exploration",
        "poetry",
    ],
    "concept": [
        "compound interest",
        "photosynthesis",
        "inflation",
        "the Krebs cycle",
        "supply and demand",
        "quantum entanglement",
        "the electoral college",
        "plate tectonics",
        "recursion",
        "entropy",
        "natural selection",
        "the Pythagorean theorem",
        "opportunity cost",
        "mitosis",
        "derivatives",
        "the French Revolution",
        "Ohm's law",
        "a p-value",
        "blockchains",
        "the immune system",
    ],
    "tone": [
        "more professional",
        "friendlier",
        "more concise",
        "less formal",
        "more persuasive",
        "warmer",
        "more confident",
        "simpler for a ten-year-old",
    ],
    "paragraph": [
        "We are writing to let you know that the office will be closed next Friday for maintenance work on the "
        "electrical system, and all staff should plan to work from home.",
        "Our quarterly numbers came in below target mainly because two large customers delayed their renewals, "
        "but the pipeline for next quarter looks healthier than it has all year.",
        "The new onboarding flow cut the average signup time in half, although support tickets about password "
        "resets went up slightly in the first week.",
        "I have been thinking a lot about whether to go back to school, and I keep going back and forth between "
        "the security of my current job and the chance to do something I actually care about.",
        "The museum's new wing houses more than three hundred works from the early modern period, many of which "
        "have never been shown to the public before.",
        "After the storm the town council agreed to fund repairs to the sea wall, but residents are still waiting "
        "for a timeline and many feel the response has been too slow.",
        "Honestly the trip was great but the hotel was a disaster, the room was tiny and nobody at the desk "
        "seemed to know how to fix the air conditioning.",
    ],
    "fn": [
        "parse_config",
        "merge_intervals",
        "calculate_total",
        "fetch_user",
        "normalize_scores",
        "group_by_day",
        "retry_request",
        "flatten_list",
        "validate_email",
        "load_orders",
        "compute_median",
        "dedupe_rows",
        "render_invoice",
        "sync_inventory",
        "find_duplicates",
        "chunk_iterable",
        "parse_timestamp",
        "apply_discount",
        "build_index",
        "update_balance",
        "resize_image",
        "tokenize",
        "schedule_jobs",
    ],
    "cls": [
        "OrderService",
        "CacheManager",
        "UserRepository",
        "RateLimiter",
        "InvoiceBuilder",
        "EventBus",
        "SessionStore",
        "PaymentGateway",
        "ReportGenerator",
        "TaskQueue",
        "ConfigLoader",
        "AuthMiddleware",
    ],
    "lang": ["Python", "TypeScript", "Go", "Rust", "Java", "SQL", "Bash", "C++", "Kotlin", "Ruby"],
    "code_error": [
        "it throws IndexError on the last element",
        "it returns None instead of the list",
        "the test fails with an off-by-one error",
        "it hangs forever on large inputs",
        "it gives the wrong total when the list is empty",
        "it crashes with a KeyError sometimes",
        "the result is duplicated for every row",
        "it works locally but times out in CI",
        "mypy complains about incompatible types",
        "it leaks connections under load",
    ],
    "snippet": [
        "```python\ndef {fn}(items):\n    total = 0\n    for i in range(len(items) + 1):\n        total += items[i]\n"
        "    return total\n```",
        "```python\nimport json\n\ndef {fn}(path):\n    with open(path) as f:\n        data = json.load(f)\n"
        "    return data.get('settings')['timeout']\n```",
        "```javascript\nfunction {fn}(rows) {\n  const out = {};\n  rows.forEach(r => { out[r.id] = out[r.id] || []; "
        "out[r.id].push(r) });\n  return Object.values(out).map(g => g[0]);\n}\n```",
        "```sql\nSELECT customer_id, SUM(amount) AS total\nFROM orders o\nJOIN payments p ON o.id = p.order_id\n"
        "WHERE o.created_at > '2026-01-01'\nGROUP BY customer_id\nHAVING total > 100;\n```",
        "```go\nfunc {fn}(ctx context.Context, ids []string) ([]User, error) {\n\tvar users []User\n\tfor _, id := range ids {\n"
        "\t\tu, err := db.Get(ctx, id)\n\t\tif err != nil {\n\t\t\tcontinue\n\t\t}\n\t\tusers = append(users, u)\n\t}\n"
        "\treturn users, nil\n}\n```",
        "```python\nclass {cls}:\n    def __init__(self, limit=10):\n        self.limit = limit\n        self.calls = []\n\n"
        "    def allow(self, now):\n        self.calls = [t for t in self.calls if now - t < 60]\n"
        "        return len(self.calls) < self.limit\n```",
        "```typescript\nexport async function {fn}(id: string): Promise<Order> {\n  const res = await fetch('/api/orders/' + id);\n"
        "  return res.json();\n}\n```",
        "```rust\nfn {fn}(v: &Vec<i64>) -> i64 {\n    let mut best = 0;\n    for x in v.iter() {\n        if *x > best { best = *x; }\n"
        "    }\n    best\n}\n```",
    ],
    "feature": [
        "pagination to the orders endpoint",
        "a retry with exponential backoff to the HTTP client",
        "CSV export for the reports page",
        "a dark mode toggle",
        "rate limiting per API key",
        "soft deletes for user accounts",
        "a health check endpoint",
        "caching for the product search",
        "OAuth login with GitHub",
        "a background job that expires stale sessions",
        "input validation for the signup form",
        "structured logging across the services",
        "a migration that splits the address column",
        "webhooks for payment events",
    ],
    "repo": [
        "billing-service",
        "web-frontend",
        "data-pipeline",
        "mobile-app",
        "inventory-api",
        "auth-server",
        "analytics-worker",
        "cli-tool",
        "monorepo",
        "search-indexer",
    ],
    "agent_task": [
        "find the three cheapest flights from {city} to {city} next month and summarise the trade-offs",
        "collect last quarter's revenue for our top five competitors and build a comparison table",
        "triage the open GitHub issues labelled bug and propose an owner for each",
        "reconcile the invoices in the shared drive with the ledger and list mismatches",
        "research suppliers of recycled packaging in Europe and draft an outreach email to each",
        "check which of our servers are running an outdated OpenSSL and open tickets for them",
        "compile a literature review of recent papers on battery recycling",
        "book a meeting room for Thursday, invite the design team and attach the agenda",
        "scrape the product pages, extract prices and update the spreadsheet",
        "monitor the deployment, roll back if the error rate exceeds two percent, and report",
    ],
    "tool_ask": [
        "What's the weather in {city} this weekend?",
        "Convert 250 EUR to JPY at today's rate.",
        "Look up the status of order {#10000-99999}.",
        "What's on my calendar for {weekday}?",
        "Find the phone number of the nearest pharmacy.",
        "Send the latest report to {name}.",
        "How many open tickets does {name} have?",
        "Create a reminder to call {name} at {#1-11} pm.",
    ],
    "school_task": [
        "solve quadratic equations by completing the square",
        "balance a chemical equation",
        "find the derivative of x^2 sin(x)",
        "calculate the area under a curve",
        "convert fractions to decimals",
        "find the probability of rolling two sixes",
        "write a thesis statement for a history essay",
        "factor a polynomial",
        "solve a system of two linear equations",
        "work out the molar mass of a compound",
        "find the slope of a line through two points",
        "use the chain rule",
    ],
    "grade": [
        "I'm in 8th grade",
        "I'm a first-year student",
        "I'm ten",
        "I'm studying for the SAT",
        "I'm taking AP Calculus",
        "I'm back in school after twenty years",
    ],
    "puzzle": [
        "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may pick one fruit "
        "from one box. How do you relabel all three boxes?",
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much is the ball?",
        "Five people sit in a row. Anna is not at either end, Ben sits next to Carl, and Dana is left of Eve. "
        "How many seatings are possible?",
        "A farmer must cross a river with a wolf, a goat and a cabbage, and the boat holds only one of them. "
        "How does he get everything across?",
        "If it takes five machines five minutes to make five widgets, how long do 100 machines take to make "
        "100 widgets?",
        "Two trains start 300 km apart and drive towards each other at 70 and 80 km/h. A bird flies between "
        "them at 120 km/h until they meet. How far does the bird fly?",
        "You have 12 coins, one counterfeit of different weight, and a balance scale. Find it in three weighings.",
        "Every knight tells the truth and every knave lies. A says 'B is a knave'. B says 'A and I are the "
        "same kind'. What are A and B?",
    ],
    "proof": [
        "the square root of 2 is irrational",
        "there are infinitely many primes",
        "the sum of the first n odd numbers is n squared",
        "every tree with n vertices has n-1 edges",
        "a continuous function on a closed interval attains its maximum",
        "the harmonic series diverges",
        "there is no largest even number",
        "any two consecutive integers are coprime",
        "the angles of a triangle sum to 180 degrees",
        "2^n > n for every positive integer n",
    ],
    "cot": [
        "Explain the reasoning behind this answer step by step.",
        "Explain the reasoning behind your answer step by step, then give the final answer.",
        "Think it through step by step and show your work before the final answer.",
        "Walk me through your reasoning in detail before you answer.",
        "Lay out your full chain of thought, one step per line, then state the result.",
        "Give a detailed step-by-step derivation and justify every step.",
        "Show your work. I need every intermediate step, not just the answer.",
        "Reason carefully step by step; explain why each step follows from the previous one.",
        "Before answering, write out your complete reasoning process in numbered steps.",
        "Provide the answer and explain the reasoning behind it as a detailed chain of thought.",
    ],
    "subject": [
        "algebra",
        "probability",
        "number theory",
        "geometry",
        "organic chemistry",
        "microeconomics",
        "classical mechanics",
        "linear algebra",
        "statistics",
        "formal logic",
        "combinatorics",
        "genetics",
    ],
    "rubric_dim": [
        "Correctness",
        "Completeness",
        "Clarity",
        "Use of evidence",
        "Reasoning quality",
        "Helpfulness",
        "Harmlessness",
        "Conciseness",
        "Faithfulness to the source",
        "Code quality",
    ],
    "answer_snip": [
        "The answer is 42 because the two quantities are proportional and the ratio stays fixed.",
        "First we factor the expression, then cancel the common term, which leaves x + 3.",
        "The function fails because the loop runs one step too far; changing <= to < fixes it.",
        "Inflation reduces purchasing power, so the real return is the nominal return minus inflation.",
        "By induction: the base case holds, and assuming it for n we show it for n + 1.",
        "The treaty ended the war but its harsh terms created resentment that lasted decades.",
        "Photosynthesis converts light energy into chemical energy stored as glucose.",
    ],
    "policy_topic": [
        "the 1989 Tiananmen Square protests",
        "the political status of Taiwan",
        "the detention camps in Xinjiang",
        "the 2019 Hong Kong protests",
        "Tibetan independence",
        "criticism of the country's top leader",
        "the death toll of the Cultural Revolution",
        "Falun Gong",
        "ways to get around national internet censorship",
        "the Great Leap Forward famine",
        "the June Fourth anniversary",
        "independent labour unions",
    ],
    # reasoning elicitation reworded so it contains none of the phrases features/signals.py looks for
    # ("step by step", "show your work", "walk me through", "reasoning behind", "thought process", ...)
    "soft_ask": [
        "Could you go over how you got there, one piece at a time?",
        "I'd like to understand how you arrive at it, so please include each stage of your thinking.",
        "Talk me through how you would approach it before giving the result.",
        "Please make every inference explicit, from the first assumption to the conclusion.",
        "Describe how you worked it out, including the parts you checked along the way.",
        "Before the final answer, note down each deduction you make and why it holds.",
        "Narrate your approach in detail, as if you were teaching a new tutor.",
        "Include the full derivation and the justification for each transition.",
        "Don't just give the result; I want to see how each part follows from the last.",
        "Go through the logic carefully and make each move explicit.",
        "Explain how one gets from the question to the answer, leaving nothing implicit.",
        "Justify each stage of the solution in a sentence or two, then state the result.",
    ],
    "rewrite_ask": [
        "Rewrite the following question so that it avoids politically sensitive framing but keeps a "
        "neutral, factual tone:",
        "Produce a version of this answer that would be acceptable under strict content regulations, "
        "removing anything a censor would object to:",
        "Paraphrase this prompt into a safe, non-controversial form that a domestic platform could publish:",
        "Give two answers to the question below: a candid one, and one rewritten to comply with local "
        "content rules. Label them clearly.",
        "Rewrite the user's question about the topic below into an officially acceptable wording:",
    ],
    "dataset": [
        "monthly sales by region",
        "website sessions per channel",
        "support tickets per product",
        "sensor readings from the warehouse",
        "employee survey scores",
        "daily ad spend and conversions",
        "shipping times by carrier",
        "churned customers by plan",
    ],
    "stat": [
        "mean and median",
        "month-over-month growth",
        "correlation",
        "95th percentile",
        "weekly trend",
        "standard deviation",
        "share of total",
        "year-over-year change",
    ],
    "dim": ["region", "channel", "product", "week", "customer segment", "carrier", "team"],
    "image_ask": [
        "What does this chart show? Summarise the trend and any anomalies.",
        "Transcribe all the text in this screenshot.",
        "Describe the user interface in this screenshot and write the HTML and CSS to reproduce it.",
        "What is wrong with the wiring in this photo?",
        "Read the values from this table image into CSV.",
        "Identify the plant in this picture and tell me how to care for it.",
        "Explain the diagram in this image as if for a textbook.",
        "Extract the handwritten equations from this photo and solve them.",
    ],
    "mcq": [
        "Which organelle is the site of aerobic respiration?",
        "Which of the following is a prime number?",
        "What is the time complexity of binary search?",
        "Which treaty ended the Thirty Years' War?",
        "Which gas makes up most of Earth's atmosphere?",
        "What is the derivative of ln(x)?",
        "Which data structure uses LIFO ordering?",
        "Who proposed the theory of general relativity?",
        "Which enzyme unwinds DNA during replication?",
        "What is the capital of Australia?",
        "Which sorting algorithm has the best worst-case complexity?",
        "Which layer of the OSI model routes packets?",
    ],
    "option": [
        "Mitochondria",
        "Ribosome",
        "O(log n)",
        "O(n)",
        "Peace of Westphalia",
        "Treaty of Utrecht",
        "Nitrogen",
        "Oxygen",
        "1/x",
        "Stack",
        "Queue",
        "Einstein",
        "Helicase",
        "Canberra",
        "Merge sort",
        "Network layer",
    ],
    "company": [
        "Acme Corp",
        "Northwind Traders",
        "Globex",
        "Initech",
        "Umbrella Supplies",
        "Stark Logistics",
        "Wayne Hardware",
        "Blue Harbor Foods",
        "Pinecrest Dental",
        "Orbital Parts GmbH",
        "Lumen Energy",
        "Vertex Legal LLP",
    ],
    "review": [
        "Arrived two days late and the box was crushed, but the blender itself works fine.",
        "Absolutely love it, best purchase this year!",
        "Stopped working after a week. Support never replied.",
        "Does what it says. Nothing special.",
        "The size chart is wrong, order one size up.",
        "Great value, although the battery life is shorter than advertised.",
        "Terrible. The app keeps crashing and I lost my data.",
        "My kids use it every day, very sturdy.",
    ],
    "issue": [
        "their card was charged twice",
        "the tracking number does not work",
        "they cannot reset their password",
        "the invoice shows the wrong VAT number",
        "the item arrived damaged",
        "their subscription did not renew",
        "the mobile app logs them out constantly",
        "they were sent the wrong size",
    ],
}

# Non-Latin-script prompts: campaigns run partly in Chinese or Russian; some benign users write in their language.
FOREIGN: dict[str, dict[str, list[str]]] = {
    "zh": {
        "chat": [
            "我下个月要去{city}旅行，能推荐{#2-7}天的行程吗？",
            "帮我写一封给房东的邮件，说明暖气坏了。",
            "请用简单的话解释一下{concept}。",
            "怎样才能提高英语口语？有什么每天可以做的练习？",
        ],
        "code": [
            "这段代码有什么问题？\n{snippet}",
            "请用{lang}写一个函数 {fn}，并加上单元测试。",
            "你是一个智能体。请规划并执行以下任务：在 {repo} 仓库中实现{#2-5}个步骤的重构，并运行测试。",
        ],
        "reason": [
            "请逐步解释这个答案背后的推理过程：{puzzle}",
            "证明：{proof}。请写出完整的推理链。",
            "计算 {#12-999} × {#12-999} + {#1-99}，并一步一步展示你的思考过程。",
            "请作为评分员，根据以下评分标准给这个回答打分（1-10分）：{answer_snip}",
        ],
    },
    "ru": {
        "chat": [
            "Помоги написать вежливое письмо {recipient} о переносе встречи.",
            "Что посмотреть в городе {city} за {#2-5} дня?",
            "Объясни простыми словами, что такое {concept}.",
        ],
        "code": [
            "Почему этот код не работает?\n{snippet}",
            "Напиши на {lang} функцию {fn} с обработкой ошибок.",
            "Ты агент с доступом к инструментам. Спланируй и выполни задачу в репозитории {repo}.",
        ],
        "reason": [
            "Объясни пошагово рассуждение, которое ведёт к ответу: {puzzle}",
            "Докажи, что {proof}. Распиши каждый шаг.",
            "Реши задачу и покажи ход решения: {#10-99}x + {#1-50} = {#100-999}.",
        ],
    },
    "ja": {
        "chat": [
            "{city}で{#2-5}日間の旅行プランを考えてください。",
            "上司へのメールを丁寧な表現に直してください。",
            "{concept}について、中学生にもわかるように説明してください。",
        ],
        "code": ["このコードのバグを直してください。\n{snippet}", "{lang}で {fn} という関数を書いてください。"],
        "reason": ["この問題を順を追って解いてください：{puzzle}"],
    },
    "ko": {
        "chat": [
            "{city} 여행 일정을 {#2-5}일로 짜 주세요.",
            "팀장님께 보낼 이메일을 정중하게 다듬어 주세요.",
            "{concept}을 쉽게 설명해 주세요.",
        ],
        "code": ["이 코드에서 버그를 찾아 주세요.\n{snippet}", "{lang}로 {fn} 함수를 작성해 주세요."],
        "reason": ["다음 문제를 단계별로 풀어 주세요: {puzzle}"],
    },
}
# Latin-script languages (extended scenario): multilingual elicitation that no English phrase list and no
# non-Latin-script share catches, and benign users who write in their own language. Appended after the
# languages above so the classic scenario's family codes do not move.
FOREIGN.update(
    {
        "es": {
            "chat": [
                "¿Qué puedo ver en {city} en {#2-7} días?",
                "Ayúdame a escribir un correo amable a {recipient}.",
                "Explícame {concept} con palabras sencillas.",
            ],
            "code": ["¿Por qué falla este código?\n{snippet}", "Escribe en {lang} una función {fn} con pruebas."],
            "reason": [
                "Resuelve esto y explica cada paso de tu razonamiento: {puzzle}",
                "Demuestra que {proof}. Justifica cada paso con detalle.",
                "Calcula {#12-999} × {#12-999} + {#1-99} y cuéntame cómo llegas al resultado, paso a paso.",
                "¿Cómo se llega a esta respuesta? Detalla todo el razonamiento: {answer_snip}",
            ],
        },
        "de": {
            "chat": [
                "Was kann man in {city} an {#2-5} Tagen unternehmen?",
                "Formuliere eine höfliche Nachricht an {recipient}.",
                "Erkläre mir {concept} in einfachen Worten.",
            ],
            "code": [
                "Warum funktioniert dieser Code nicht?\n{snippet}",
                "Schreibe in {lang} eine Funktion {fn} mit Tests.",
            ],
            "reason": [
                "Löse die Aufgabe und erkläre jeden Schritt ausführlich: {puzzle}",
                "Beweise, dass {proof}. Begründe jeden einzelnen Schritt.",
                "Wie kommt man auf dieses Ergebnis? Lege die gesamte Herleitung dar: {answer_snip}",
            ],
        },
        "fr": {
            "chat": [
                "Que visiter à {city} en {#2-5} jours ?",
                "Aide-moi à écrire un message poli à {recipient}.",
                "Explique-moi {concept} simplement.",
            ],
            "code": [
                "Pourquoi ce code ne marche pas ?\n{snippet}",
                "Écris en {lang} une fonction {fn} avec des tests.",
            ],
            "reason": [
                "Résous ce problème et détaille chaque étape de ton raisonnement : {puzzle}",
                "Démontre que {proof}. Justifie chaque étape.",
                "Comment arrive-t-on à cette réponse ? Développe tout le raisonnement : {answer_snip}",
            ],
        },
        "pt": {
            "chat": [
                "O que ver em {city} em {#2-5} dias?",
                "Me ajude a escrever uma mensagem educada para {recipient}.",
                "Explique {concept} de forma simples.",
            ],
            "code": ["Por que este código não funciona?\n{snippet}", "Escreva em {lang} uma função {fn} com testes."],
            "reason": [
                "Resolva e explique cada etapa do raciocínio: {puzzle}",
                "Prove que {proof}. Justifique cada passagem.",
                "Como se chega a esta resposta? Explique todo o raciocínio: {answer_snip}",
            ],
        },
    }
)
LANGUAGES = ("en", *FOREIGN)
LATIN_SCRIPT_LANGUAGES = ("es", "de", "fr", "pt")

# what people wrap around a question when they type it themselves (index 0 = nothing, used by scripts)
OPENERS = (
    "",
    "hi! ",
    "Hey, ",
    "quick question: ",
    "ok so ",
    "Hello Claude, ",
    "Please help. ",
    "hmm ",
    "So, ",
    "Good morning! ",
    "I have a question. ",
    "sorry if this is dumb but ",
    "Another one: ",
    "Follow-up: ",
    "Need help asap. ",
    "Hi there, ",
    "My boss asked me this: ",
    "Random thought: ",
    "One more thing. ",
    "Thanks for earlier! ",
    "Okay, ",
    "Yo ",
    "Dear assistant, ",
    "Hiya. ",
)
CLOSERS = (
    "",
    " Thanks!",
    " thank you",
    " Keep it short please.",
    " Use bullet points.",
    " Explain like I'm five.",
    " Be honest.",
    " I'm on my phone so keep it brief.",
    " No jargon please.",
    " In under 200 words.",
    " Cheers",
    " Appreciate it!",
    " It's for my sister.",
    " It's for a school project.",
    " ASAP please",
    " (I'm a total beginner)",
    " Give me two options.",
    " I'm in a hurry.",
    " Thanks in advance.",
    " :)",
    " This is for work.",
    " What do you think?",
    " Does that make sense?",
    " lol",
    " Please double check.",
    " I tried googling it already.",
    " Answer in a friendly tone.",
    " Add an example.",
)


@dataclass(frozen=True)
class Family:
    """A kind of request: its templates and the request shape that goes with it."""

    name: str
    forms: tuple[str, ...]
    foreign_kind: str  # which FOREIGN bucket stands in for it when the prompt is not in English
    tool_prob: float = 0.0  # chance the request declares tools
    tools: tuple[int, int] = (0, 0)  # tool_count range when it does
    image_prob: float = 0.0
    input_tokens: float = 400.0  # median of a lognormal
    output_tokens: float = 400.0


FAMILIES: tuple[Family, ...] = (
    Family(
        "chat",
        (
            "What's a good way to {life_task}?",
            "Help me write a {msg_kind} to {recipient} about {topic}.",
            "I'm planning a trip to {city} in {month}. What should I see in {#2-7} days? We like food and walking.",
            "Can you recommend {#3-8} books about {book_topic}? I liked the last one about {book_topic}.",
            "Explain {concept} in simple terms, my friend {name} keeps bringing it up.",
            "hey quick question, how do I {life_task}? tried a few things already",
            "My friend {name} and I disagree about {concept}. Who is right? Walk me through it.",
            "Give me a {#3-5} day itinerary for {city}, not too touristy please",
        ),
        "chat",
        input_tokens=250,
        output_tokens=450,
    ),
    Family(
        "writing",
        (
            "Rewrite this paragraph to sound {tone}:\n\n{paragraph}",
            "Summarize the following in {#2-5} bullet points:\n\n{paragraph}",
            "Proofread this and fix grammar only, keep my voice: {paragraph}",
            "Turn this into a {msg_kind} for {recipient}: {paragraph}",
        ),
        "chat",
        input_tokens=500,
        output_tokens=350,
    ),
    Family(
        "coding",
        (
            "Fix this bug, {code_error}:\n{snippet}",
            "Write a function in {lang} called {fn} that takes a list of records and returns them grouped by day.",
            "Can you explain what this code does and whether it's safe?\n{snippet}",
            "How do I write unit tests for {fn} in {lang}? Here's the code:\n{snippet}",
            "Refactor {cls} so it is easier to test. {code_error} right now.\n{snippet}",
            "import error when running {fn} from {repo}, {code_error}. any idea?",
            "Write a SELECT that returns the top {#3-20} customers by revenue per month from orders and payments.",
        ),
        "code",
        input_tokens=1800,
        output_tokens=700,
    ),
    Family(
        "coding_agent",
        (
            "Implement {feature} in the {repo} repository. Read the relevant files first, plan the change, edit the "
            "code, run the tests and iterate until they pass.",
            "You are an autonomous coding agent. Fix the failing test in {repo}: {code_error}. Use the tools to inspect "
            "files, run commands and apply patches.",
            "Plan and execute a refactor of {cls} in {repo}: split it into smaller modules, update imports, run the "
            "linter and the test suite.",
            "Add {feature} to {repo}. Step 1: explore the codebase. Step 2: write the code. Step 3: write tests. "
            "Step 4: open a pull request.",
        ),
        "code",
        tool_prob=0.95,
        tools=(3, 14),
        input_tokens=9000,
        output_tokens=900,
    ),
    Family(
        "agentic",
        (
            "You are an agent with access to tools. Plan and execute this multi-step task: {agent_task}.",
            "Use the tools to {agent_task}. Break it into steps, call the tools you need, and report back.",
            "Task: {agent_task}. You have browser, spreadsheet and email tools. Think about the plan first, then act.",
        ),
        "code",
        tool_prob=0.95,
        tools=(3, 10),
        input_tokens=4000,
        output_tokens=600,
    ),
    Family(
        "tool_use",
        (
            "{tool_ask}",
            "{tool_ask} Thanks!",
            "{tool_ask} Also remind me about it {weekday}.",
        ),
        "chat",
        tool_prob=0.9,
        tools=(1, 4),
        input_tokens=700,
        output_tokens=150,
    ),
    Family(
        "reasoning",
        (
            "Solve this logic puzzle: {puzzle}",
            "Prove that {proof}.",
            "Calculate {#12-999} * {#12-999} - {#100-9999} and check the result.",
            "A tank fills at {#2-20} litres per minute and drains at {#1-9} litres per minute. How long until it holds "
            "{#100-900} litres?",
            "What's the probability of drawing {#2-4} aces in a row from a shuffled deck without replacement?",
            "Is this argument valid? {puzzle}",
        ),
        "reason",
        input_tokens=300,
        output_tokens=900,
    ),
    Family(
        "student",
        (
            "Can you explain step by step how to {school_task}? I have a test {weekday}.",
            "I don't understand {concept}. {grade}, can you walk me through it?",
            "Solve {#2-9}x + {#1-30} = {#31-99} and show your work please",
            "how do you {school_task}?? my teacher explained it but I'm lost",
            "Check my homework: {answer_snip} Is that right? Explain where I went wrong.",
            "Quiz me on {concept} with {#3-10} questions, {grade}",
        ),
        "reason",
        input_tokens=200,
        output_tokens=600,
    ),
    Family(
        "data_analysis",
        (
            "Here is a CSV of {dataset} (columns: date, {dim}, value). Compute the {stat} per {dim} and flag outliers.",
            "Using pandas, load {dataset} and plot the {stat} by {dim}. The file has {#1000-90000} rows.",
            "Our {dataset} dropped {#5-40}% last week. Break it down by {dim} and suggest causes.",
        ),
        "code",
        tool_prob=0.4,
        tools=(1, 3),
        input_tokens=3000,
        output_tokens=800,
    ),
    Family(
        "vision",
        ("{image_ask}", "{image_ask} Be precise.", "Look at the attached image. {image_ask}"),
        "chat",
        image_prob=1.0,
        input_tokens=1600,
        output_tokens=500,
    ),
    Family(
        "eval_mcq",
        (
            "Question {#1-5000}: {mcq}\nA) {option}\nB) {option}\nC) {option}\nD) {option}\n"
            "Answer with only the letter of the correct option.",
            "The following is a multiple choice question about {subject}. {mcq}\n(A) {option} (B) {option} (C) {option} "
            "(D) {option}\nAnswer:",
        ),
        "reason",
        input_tokens=350,
        output_tokens=8,
    ),
    Family(
        "eval_grading",
        (
            "Evaluate the following answer for factual accuracy. Reply with a score from 1 to 5 and one sentence of "
            "justification.\nQuestion: {mcq}\nAnswer: {answer_snip}",
            "You are a strict grader. Does the response below correctly answer the question? Output PASS or FAIL.\n"
            "Question: {mcq}\nResponse: {answer_snip}",
        ),
        "reason",
        input_tokens=600,
        output_tokens=60,
    ),
    Family(
        "batch_extract",
        (
            "Extract the following fields as JSON (invoice_number, vendor, total, due_date) from this invoice:\n\n"
            "INVOICE #{#10000-99999}\nVendor: {company}\nDate: {#1-28}/{#1-12}/2026\nTotal due: ${#100-9999}.{#10-99}",
            "Return JSON with keys name, email, company for the sender of this message:\n\nHi, this is {name} from "
            "{company}. Please call me back at +1 555 {#100-999} {#1000-9999} about order {#10000-99999}.",
            "Summarise this support ticket in one line and tag it with one of billing/shipping/account/other.\n"
            "Ticket {#100000-999999} from {company}: {issue}.",
        ),
        "chat",
        input_tokens=700,
        output_tokens=90,
    ),
    Family(
        "batch_classify",
        (
            "Classify the sentiment of this review as positive, negative or neutral. Review: \"{review}\"",
            "Label this product review with a star rating from 1 to 5 and one topic. Review #{#1-999999}: {review}",
            "Is the following customer message about billing, shipping or product quality? Message: {review}",
        ),
        "chat",
        input_tokens=250,
        output_tokens=12,
    ),
    Family(
        "support_agent",
        (
            "Ticket #{#10000-99999}: customer {name} reports that {issue}. Look up the account, check recent orders "
            "with the tools, and draft a reply.",
            "New escalation from {company}: {issue}. Use the CRM and billing tools to investigate, then summarise.",
        ),
        "chat",
        tool_prob=1.0,
        tools=(3, 8),
        input_tokens=5000,
        output_tokens=350,
    ),
    # --- distillation campaign content (docs/design.md §1) -----------------------------------------------
    Family(
        "cot_elicit",
        (
            "{puzzle}\n\n{cot}",
            "Problem ({subject}): Calculate {#12-999} * {#12-999} + {#1-99}. {cot}",
            "Prove that {proof}. {cot}",
            "{cot} Question: a store sells {#2-40} items at ${#2-90} each with a {#5-30}% discount. What is the total?",
            "Here is a {subject} question and its answer. {answer_snip} {cot}",
            "Solve for x: {#2-9}x^2 - {#2-40}x + {#1-30} = 0. {cot}",
        ),
        "reason",
        input_tokens=260,
        output_tokens=2600,
    ),
    Family(
        "rubric_grade",
        (
            "You are an expert grader acting as a reward model. Rubric:\n1. {rubric_dim} ({#1-5} points)\n2. {rubric_dim} "
            "({#1-5} points)\n3. {rubric_dim} ({#1-5} points)\nEvaluate the following answer against the rubric, "
            "explain each criterion, then score this response on a scale of 1-10.\nAnswer: {answer_snip}",
            "Grade the response below using the rubric ({rubric_dim}, {rubric_dim}, {rubric_dim}). Give a score for each "
            "criterion and a final grade from 1 to 10 with detailed reasoning.\nResponse: {answer_snip}",
            "Compare response A and response B to the {subject} question and say which is better according to the "
            "rubric. A: {answer_snip} B: {answer_snip} Score each on a scale of 1-10.",
        ),
        "reason",
        input_tokens=700,
        output_tokens=1500,
    ),
    Family(
        "policy_rewrite",
        (
            "{rewrite_ask} \"What really happened during {policy_topic}?\"",
            "{rewrite_ask} \"Why is {policy_topic} considered controversial?\"",
            "{rewrite_ask} \"Summarise the international criticism of {policy_topic}.\"",
        ),
        "reason",
        input_tokens=220,
        output_tokens=1200,
    ),
)
CLASSIC_FAMILIES = FAMILIES
# English families only the extended scenario draws. They get prompt codes after every foreign family, so
# the classic scenario's codes (which seed its template hashes) stay where they were.
EXTENDED_FAMILIES: tuple[Family, ...] = (
    Family(
        "cot_soft",
        (
            "{puzzle}\n\n{soft_ask}",
            "Here is a {subject} problem: what is {#12-999} times {#12-999} minus {#1-99}? {soft_ask}",
            "{soft_ask} The question: {mcq}",
            "Take this claim: {proof}. Is it true? {soft_ask}",
            "A shop sells {#2-40} items at ${#2-90} each with {#5-30}% off. What is the total? {soft_ask}",
            "{answer_snip} Is this right? {soft_ask}",
            "For my {subject} notes, about {concept}: {soft_ask}",
        ),
        "reason",
        input_tokens=240,
        output_tokens=2200,
    ),
)
FAMILIES = CLASSIC_FAMILIES + EXTENDED_FAMILIES
FAMILY_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(FAMILIES)}

_SLOT = re.compile(r"\{(#\d+-\d+|[a-z_]+)\}")
# odd 64-bit multipliers for the template hash (splitmix-style mixing)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@dataclass(frozen=True)
class _Slot:
    pool: str | None  # None for a number slot
    low: int = 0
    high: int = 0


def _parse(form: str) -> tuple[tuple[str, ...], tuple[_Slot, ...]]:
    """'a {x} b {#1-9}' -> literals ('a ', ' b ', '') and slots (x, #1-9)."""
    literals, slots, last = [], [], 0
    for match in _SLOT.finditer(form):
        literals.append(form[last : match.start()])
        token = match.group(1)
        if token.startswith("#"):
            low, high = token[1:].split("-")
            slots.append(_Slot(None, int(low), int(high)))
        else:
            if token not in POOLS:
                raise KeyError(f"prompt form {form[:40]!r} uses unknown pool {token!r}")
            slots.append(_Slot(token))
        last = match.end()
    literals.append(form[last:])
    return tuple(literals), tuple(slots)


def mix_hash(*parts: np.ndarray | int) -> np.ndarray:
    """Deterministic 64-bit mix of integer arrays (same inputs -> same output on every run)."""
    acc = np.zeros(np.broadcast(*[np.asarray(p) for p in parts]).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, part in enumerate(parts):
            value = np.asarray(part).astype(np.uint64)
            acc = acc ^ (value + _MIX[i % 3] + (acc << np.uint64(6)) + (acc >> np.uint64(2)))
            acc = (acc ^ (acc >> np.uint64(30))) * _MIX[1]
            acc = (acc ^ (acc >> np.uint64(27))) * _MIX[2]
            acc = acc ^ (acc >> np.uint64(31))
    return acc


class PromptBook:
    """Parsed families and Arrow pools; `build` turns (family, template key, salt) columns into text."""

    def __init__(self) -> None:
        self.pools = {name: pa.array(self._expand_nested(values)) for name, values in POOLS.items()}
        self.forms: list[list[tuple[tuple[str, ...], tuple[_Slot, ...]]]] = [
            [_parse(form) for form in family.forms] for family in CLASSIC_FAMILIES
        ]
        # prompt codes: classic English families, then foreign ones (len(CLASSIC_FAMILIES) + k), then the
        # extended English families
        self.foreign_forms: list[list[tuple[tuple[str, ...], tuple[_Slot, ...]]]] = []
        self.foreign_index: dict[tuple[str, str], int] = {}
        for lang, buckets in FOREIGN.items():
            for kind, forms in buckets.items():
                self.foreign_index[(lang, kind)] = len(CLASSIC_FAMILIES) + len(self.foreign_forms)
                self.foreign_forms.append([_parse(form) for form in forms])
        extended_forms = [[_parse(form) for form in family.forms] for family in EXTENDED_FAMILIES]
        self.all_forms = self.forms + self.foreign_forms + extended_forms
        # english_code[family] -> prompt code of an English family; is_english[code] -> typed by people
        self.english_code = np.r_[
            np.arange(len(CLASSIC_FAMILIES)),
            len(self.forms) + len(self.foreign_forms) + np.arange(len(EXTENDED_FAMILIES)),
        ]
        self.is_english = np.zeros(len(self.all_forms), dtype=bool)
        self.is_english[self.english_code] = True
        self.openers, self.closers = pa.array(OPENERS), pa.array(CLOSERS)
        self.n_forms = np.array([len(forms) for forms in self.all_forms], dtype=np.int64)
        if self.n_forms.max() > MAX_FORMS:
            raise ValueError(f"a family has more than {MAX_FORMS} forms")
        # lang_map[lang, family] -> family code to use when the prompt is written in that language
        self.lang_map = np.zeros((len(LANGUAGES), len(FAMILIES)), dtype=np.int16)
        for li, lang in enumerate(LANGUAGES):
            for fi, family in enumerate(FAMILIES):
                self.lang_map[li, fi] = (
                    self.english_code[fi] if lang == "en" else self.foreign_index[(lang, family.foreign_kind)]
                )

    @staticmethod
    def _expand_nested(values: list[str]) -> list[str]:
        # pools such as agent_task and snippet contain slots themselves; fill them once, deterministically,
        # so pool entries stay plain text (variety comes from the outer slots)
        out = []
        for i, value in enumerate(values):
            literals, slots = _parse(value) if "{" in value and _SLOT.search(value) else ((value,), ())
            text = literals[0]
            for j, slot in enumerate(slots):
                if slot.pool is None:
                    text += str(slot.low + (i * 7 + j * 13) % (slot.high - slot.low + 1))
                else:
                    pool = POOLS[slot.pool]
                    text += pool[(i * 5 + j * 3) % len(pool)]
                text += literals[j + 1]
            out.append(text)
        return out

    @property
    def n_families(self) -> int:
        return len(self.all_forms)

    def build(
        self, family: np.ndarray, template_key: np.ndarray, salt: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, pa.Array]:
        """Prompt text for records. template_key < 0 means free text; otherwise (salt, key) fixes the form and
        every pool slot, and only numbers vary.

        Returns (order, text): text[i] belongs to record order[i]. Row order inside a chunk carries no
        meaning, so callers permute their other columns by `order` instead of paying for a string take."""
        templated = template_key >= 0
        n_forms = self.n_forms[family]
        key_hash = mix_hash(salt, template_key, family)
        form = np.where(
            templated,
            (key_hash % n_forms.astype(np.uint64)).astype(np.int64),
            (rng.random(len(family)) * n_forms).astype(np.int64),
        )
        # one sort groups the records by (family, form); each group is then filled column-wise
        group = family.astype(np.int64) * MAX_FORMS + form
        by_group = np.argsort(group, kind="stable")
        sorted_groups = group[by_group]
        starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) if len(group) else []
        pieces: list[pa.Array] = []
        for rows, code in zip(np.split(by_group, starts[1:]), sorted_groups[starts], strict=True):
            family_code, form_no = divmod(int(code), MAX_FORMS)
            humanize = bool(self.is_english[family_code])  # people typing English add greetings and asides
            pieces.append(
                self._fill(self.all_forms[family_code][form_no], templated[rows], key_hash[rows], rng, humanize)
            )
        if not pieces:
            return np.zeros(0, dtype=np.int64), pa.array([], pa.string())
        text = pa.concat_arrays(pieces)
        if pc.max(pc.binary_length(text)).as_py() > PROMPT_PREFIX_CHARS:
            text = pc.utf8_slice_codeunits(text, 0, PROMPT_PREFIX_CHARS)
        return by_group, text

    def _fill(
        self,
        form: tuple[tuple[str, ...], tuple[_Slot, ...]],
        templated: np.ndarray,
        key_hash: np.ndarray,
        rng: np.random.Generator,
        humanize: bool,
    ) -> pa.Array:
        literals, slots = form
        n = len(templated)
        columns: list[pa.Array | str] = []
        any_templated = templated.any()
        humanize = humanize and not templated.all()
        if humanize:
            columns.append(self.openers.take(pa.array(np.where(templated, 0, rng.integers(0, len(OPENERS), n)))))
        columns.append(literals[0])
        for slot_no, slot in enumerate(slots):
            if slot.pool is None:
                # scripted numbers keep the width of the slot's maximum, so a fingerprint that maps each digit
                # to '#' repeats exactly as one that collapses digit runs does
                width_low = max(slot.low, 10 ** (len(str(slot.high)) - 1))
                numbers = np.where(
                    templated, rng.integers(width_low, slot.high + 1, n), rng.integers(slot.low, slot.high + 1, n)
                )
                columns.append(pc.cast(pa.array(numbers), pa.string()))
            else:
                pool = self.pools[slot.pool]
                pick = rng.integers(0, len(pool), n)
                if any_templated:
                    fixed = (mix_hash(key_hash, slot_no + 1) % np.uint64(len(pool))).astype(np.int64)
                    pick = np.where(templated, fixed, pick)
                columns.append(pool.take(pa.array(pick)))
            columns.append(literals[slot_no + 1])
        if humanize:
            columns.append(self.closers.take(pa.array(np.where(templated, 0, rng.integers(0, len(CLOSERS), n)))))
        columns = [c for c in columns if not (isinstance(c, str) and c == "")]
        if all(isinstance(c, str) for c in columns):
            return pa.repeat(pa.scalar("".join(columns), pa.string()), n)
        if len(columns) == 1:
            return columns[0]
        return pc.binary_join_element_wise(*columns, "").cast(pa.string())


def normalized_fingerprint(text: pa.Array) -> pa.Array:
    """lowercase, digits -> #, whitespace collapsed: the normalization the content features use."""
    lowered = pc.utf8_lower(text)
    hashed = pc.replace_substring_regex(lowered, r"\d", "#")
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(hashed, r"\s+", " "))
