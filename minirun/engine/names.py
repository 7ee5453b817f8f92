"""Docker-style container names: adjective_surname."""
import os

ADJECTIVES = """admiring agitated amazing awesome blissful bold brave busy charming clever
compassionate competent confident cool dazzling determined eager ecstatic elastic elegant
epic exciting fervent festive focused friendly gallant gifted goofy gracious happy hardcore
heuristic hopeful hungry infallible inspiring intelligent jolly jovial keen kind laughing
loving lucid magical modest musing nervous nice nifty nostalgic objective optimistic peaceful
pensive practical priceless quirky quizzical relaxed reverent romantic sad serene sharp silly
sleepy stoic strange suspicious sweet tender thirsty trusting upbeat vibrant vigilant
vigorous wizardly wonderful youthful zealous zen""".split()

SURNAMES = """albattani allen almeida archimedes babbage banach bardeen bartik bell blackwell
bohr booth borg bose brahmagupta brown carson cerf chandrasekhar curie darwin dijkstra
driscoll easley einstein elion engelbart euclid euler faraday fermat fermi feynman franklin
galileo gauss goldberg goldwasser goodall hamilton hawking heisenberg hellman hodgkin
hopper hypatia jackson jang jennings johnson kalam kepler khorana knuth kowalevski lalande
lamport leakey lovelace lumiere mahavira mayer mccarthy mcclintock meitner mendel merkle
mirzakhani montalcini moore morse napier nash newton nightingale nobel noether noyce
pare pascal pasteur perlman pike poincare ptolemy raman ramanujan ride ritchie rosalind
saha sammet shamir shannon shockley sinoussi snyder spence stallman stonebraker swartz
tesla thompson torvalds turing varahamihira villani wescoff wiles williams wilson wing
wozniak wright yalow yonath""".split()


def random_name():
    a, b = os.urandom(2)
    return f"{ADJECTIVES[a % len(ADJECTIVES)]}_{SURNAMES[b % len(SURNAMES)]}"
