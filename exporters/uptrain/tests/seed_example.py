# The code cells of LangChain's "UpTrain" callbacks page (docs/docs/integrations/callbacks/
# uptrain.ipynb), in order, as a script: the vanilla RAG, multi-query and context-compression
# examples with UpTrainCallbackHandler(key_type="openai", api_key=OPENAI_API_KEY).
#
# Changed, and nothing else:
# - the import lines: the drop-in's `UpTrainCallbackHandler`, and LangChain 1.x's homes of the
#   page's classes (`langchain.chains`/`langchain.retrievers` moved to langchain_classic);
# - the reranker: the page's `FlashrankRerank()` downloads its model weights from a hub when
#   built, which this machine cannot reach; `EmbeddingsFilter` over the page's own embeddings
#   ranks the documents by relevance offline instead (still a ContextualCompressionRetriever).
# The test runs it with OPENAI_BASE_URL at the loopback stand-in for OpenAI, the key on stdin
# (for the page's getpass()), and a working directory where ../../modules/state_of_the_union.txt
# is the test's own document. It ends without any flush, as the page does.
from getpass import getpass

from langchain_classic.chains import RetrievalQA
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import EmbeddingsFilter
from langchain_classic.retrievers.multi_query import MultiQueryRetriever
from langchain_community.document_loaders import TextLoader
from langchain_community.vectorstores import FAISS
from langchain_core.output_parsers.string import StrOutputParser
from langchain_core.prompts.chat import ChatPromptTemplate
from langchain_core.runnables.passthrough import RunnablePassthrough
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from langchain_text_splitters import (
    RecursiveCharacterTextSplitter,
)
from otel_bridge_uptrain import UpTrainCallbackHandler

loader = TextLoader("../../modules/state_of_the_union.txt")
documents = loader.load()

text_splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=0)
chunks = text_splitter.split_documents(documents)

embeddings = OpenAIEmbeddings()
db = FAISS.from_documents(chunks, embeddings)
retriever = db.as_retriever()

llm = ChatOpenAI(temperature=0, model="gpt-4")

OPENAI_API_KEY = getpass()

# 1. Vanilla RAG
# Create the RAG prompt
template = """Answer the question based only on the following context, which can include text and tables:
{context}
Question: {question}
"""
rag_prompt_text = ChatPromptTemplate.from_template(template)

# Create the chain
chain = (
    {"context": retriever, "question": RunnablePassthrough()}
    | rag_prompt_text
    | llm
    | StrOutputParser()
)

# Create the uptrain callback handler
uptrain_callback = UpTrainCallbackHandler(key_type="openai", api_key=OPENAI_API_KEY)
config = {"callbacks": [uptrain_callback]}

# Invoke the chain with a query
query = "What did the president say about Ketanji Brown Jackson"
docs = chain.invoke(query, config=config)

# 2. Multi Query Generation
# Create the retriever
multi_query_retriever = MultiQueryRetriever.from_llm(retriever=retriever, llm=llm)

# Create the uptrain callback
uptrain_callback = UpTrainCallbackHandler(key_type="openai", api_key=OPENAI_API_KEY)
config = {"callbacks": [uptrain_callback]}

# Create the RAG prompt
template = """Answer the question based only on the following context, which can include text and tables:
{context}
Question: {question}
"""
rag_prompt_text = ChatPromptTemplate.from_template(template)

chain = (
    {"context": multi_query_retriever, "question": RunnablePassthrough()}
    | rag_prompt_text
    | llm
    | StrOutputParser()
)

# Invoke the chain with a query
question = "What did the president say about Ketanji Brown Jackson"
docs = chain.invoke(question, config=config)

# 3. Context Compression and Reranking
# Create the retriever
compressor = EmbeddingsFilter(embeddings=embeddings, k=2)
compression_retriever = ContextualCompressionRetriever(
    base_compressor=compressor, base_retriever=retriever
)

# Create the chain
chain = RetrievalQA.from_chain_type(llm=llm, retriever=compression_retriever)

# Create the uptrain callback
uptrain_callback = UpTrainCallbackHandler(key_type="openai", api_key=OPENAI_API_KEY)
config = {"callbacks": [uptrain_callback]}

# Invoke the chain with a query
query = "What did the president say about Ketanji Brown Jackson"
result = chain.invoke(query, config=config)
